/// The queue that sends a node's publishes to Redis in order, as pipelines.
import Foundation
import Logging
import RedisClient
import Synchronization

/// Sends publishes to Redis in call order, as pipelines: whatever queued while one pipeline was
/// out goes in the next, so concurrent publishes share one write and one read, and a connection
/// may have several publishes in flight without reordering them. One pipeline is out at a time
/// (the pooled connections would not keep two in order); the next one goes out as soon as the
/// previous one's replies are in, before its callers are answered.
final class PublishQueue: Sendable {
    enum Command: Sendable {
        case plain(RedisCommand)
        /// EVALSHA; sent again as EVAL with the source when Redis lost its script cache. The keys
        /// carry the client's prefix already.
        case script(RedisScript, prefixedKeys: [any RESPArgument], args: [any RESPArgument])
    }

    typealias Completion = @Sendable (Result<RESPValue, any Error>) -> Void

    private struct Entry: Sendable {
        var command: Command
        var completion: Completion
    }

    private struct State {
        var queued: [Entry] = []
        var sending = false
    }

    /// Commands per pipeline, so one write stays a reasonable size.
    static let maxBatch = 1024

    private let redis: RedisClient
    private let state = Mutex(State())

    init(redis: RedisClient) {
        self.redis = redis
    }

    func enqueue(_ command: Command, completion: @escaping Completion) {
        let start = state.withLock { state -> Bool in
            state.queued.append(Entry(command: command, completion: completion))
            guard !state.sending else { return false }
            state.sending = true
            return true
        }
        if start { Task { await self.drain() } }
    }

    /// Sends one pipeline after another; a pipeline's callers are answered while the next one is
    /// out, and before the queue goes idle, so answers keep their order.
    private func drain() async {
        var answered: (batch: [Entry], replies: [Result<RESPValue, any Error>])?
        while true {
            let batch = state.withLock { state -> [Entry] in
                guard !state.queued.isEmpty else {
                    if answered == nil { state.sending = false }
                    return []
                }
                if state.queued.count <= Self.maxBatch {
                    defer { state.queued = [] }
                    return state.queued
                }
                defer { state.queued.removeFirst(Self.maxBatch) }
                return Array(state.queued.prefix(Self.maxBatch))
            }
            if batch.isEmpty {
                guard let done = answered else { return }
                Self.complete(done.batch, done.replies)
                answered = nil
                continue
            }
            let exchange = Task { await self.exchange(batch) }
            if let done = answered { Self.complete(done.batch, done.replies) }
            answered = (batch, await exchange.value)
        }
    }

    private static func complete(_ batch: [Entry], _ replies: [Result<RESPValue, any Error>]) {
        for (entry, reply) in zip(batch, replies) { entry.completion(reply) }
    }

    /// One pipeline and its replies, in order. The pipeline opens with a SCRIPT LOAD of each
    /// script it runs: a Redis that lost its scripts (restart, SCRIPT FLUSH, another node having
    /// loaded only some of them since) would otherwise run the EVALSHAs of one script and refuse
    /// those of another, and the retried ones would land after later publishes to their channel.
    private func exchange(_ batch: [Entry]) async -> [Result<RESPValue, any Error>] {
        var scripts: [RedisScript] = []
        for entry in batch {
            if case .script(let script, _, _) = entry.command, !scripts.contains(script) { scripts.append(script) }
        }
        do {
            let loads = scripts.map { RedisCommand("SCRIPT", "LOAD", $0.source) }
            var replies = Array(try await redis.pipeline(loads + batch.map { redisCommand($0.command, withSource: false) }).dropFirst(loads.count))
            // NOSCRIPT (flushed while this very pipeline ran): those scripts did not run; run them with their source.
            let missing = batch.indices.filter { index in
                if case .script = batch[index].command, replies[index].errorMessage?.hasPrefix("NOSCRIPT") == true { return true }
                return false
            }
            if !missing.isEmpty {
                let retried = try await redis.pipeline(missing.map { redisCommand(batch[$0].command, withSource: true) })
                for (index, reply) in zip(missing, retried) { replies[index] = reply }
            }
            return replies.map { reply in
                if let message = reply.errorMessage { return .failure(RedisError.server(message)) }
                return .success(reply)
            }
        } catch {
            return batch.map { _ in .failure(error) }
        }
    }

    private func redisCommand(_ command: Command, withSource: Bool) -> RedisCommand {
        switch command {
        case .plain(let command):
            return command
        case .script(let script, let keys, let args):
            return redis.scriptCommand(script, prefixedKeys: keys, args: args, withSource: withSource)
        }
    }
}
