import Foundation
import Gateway
import NIOCore
import NIOPosix
import Synchronization

/// `switchboard-bench gateway abuse`: well-behaved subscribers' publish → deliver latency in one
/// run, first alone and then with a share of misbehaving connections added: flooding commands,
/// sending oversized frames, never answering pings, subscribing where they may not. Each kind
/// reconnects when it is disconnected and goes on; the close codes they get are counted and
/// checked.
extension GatewayBench {
    enum AbuseKind: String, CaseIterable, Sendable {
        case flood, oversized, noPong = "no-pong", forbidden

        /// The close code the gateway must send this kind (nil: it must stay connected).
        var expectedClose: Int? {
            switch self {
            case .flood: Disconnect.tooManyRequests.code
            case .oversized: Disconnect.messageTooLarge.code
            case .noPong: Disconnect.noPong.code
            case .forbidden: nil
            }
        }
    }

    /// The misbehaving connections of one kind, reconnected (at most once a second each) when the
    /// gateway closes them.
    final class Abusers: Sendable {
        let kind: AbuseKind
        let stats = Stats(recordLatency: false)
        let connects = Atomic<Int>(0)
        private let target: Target
        private let slots: Mutex<[(channel: (any Channel)?, handler: BenchConnection?, retryAt: Date)]>
        private let nextID = Atomic<Int>(10)

        init(kind: AbuseKind, count: Int, target: Target) {
            self.kind = kind
            self.target = target
            slots = Mutex(Array(repeating: (nil, nil, Date.distantPast), count: count))
        }

        /// One round: reconnects closed connections whose pause is over, then misbehaves on each ready one.
        func tick() async {
            let count = slots.withLock { $0.count }
            for index in 0..<count {
                let (channel, handler, retryAt) = slots.withLock { $0[index] }
                guard let channel, let handler, channel.isActive else {
                    guard Date() >= retryAt else { continue }
                    slots.withLock { $0[index].retryAt = Date().addingTimeInterval(1) }
                    let token = GatewayTokens.mint(secret: target.secret, user: "abuser-\(kind.rawValue)-\(index)", ttl: 3600)
                    let fresh = BenchConnection(mode: .client(token: token, subscribe: nil), stats: stats, answersPings: kind != .noPong)
                    if let opened = try? await GatewayBench.connect(target: target, handler: fresh) {
                        connects.add(1, ordering: .relaxed)
                        slots.withLock { $0[index] = (opened, fresh, Date().addingTimeInterval(1)) }
                    }
                    continue
                }
                guard handler.isReady else { continue }
                var buffer = channel.allocator.buffer(capacity: 256)
                switch kind {
                case .flood:
                    for _ in 0..<200 {
                        let id = nextID.add(1, ordering: .relaxed).newValue
                        BenchConnection.writeFrame(#"{"id":\#(id),"presence":{"channel":"bench:ch0"}}"#, to: &buffer)
                    }
                case .oversized:
                    let id = nextID.add(1, ordering: .relaxed).newValue
                    let filler = String(repeating: "x", count: 256 * 1024)
                    BenchConnection.writeFrame(#"{"id":\#(id),"publish":{"channel":"bench:ch0","data":"\#(filler)"}}"#, to: &buffer)
                case .noPong:
                    continue
                case .forbidden:
                    let id = nextID.add(1, ordering: .relaxed).newValue
                    BenchConnection.writeFrame(#"{"id":\#(id),"subscribe":{"channel":"secret:plans\#(index)"}}"#, to: &buffer)
                }
                channel.writeAndFlush(buffer, promise: nil)
            }
        }

        func close() {
            for slot in slots.withLock({ $0 }) { slot.channel?.close(promise: nil) }
        }

        /// `kind=… connections=… connects=… closes={code: n} error_replies=… ok|WRONG`.
        func summary() -> (line: String, ok: Bool) {
            let closes = stats.closeCodes.withLock { $0 }
            let errors = stats.publishErrors.load(ordering: .relaxed)
            let ok: Bool
            if let expected = kind.expectedClose {
                ok = closes[expected, default: 0] > 0 && closes.keys.allSatisfy { $0 == expected }
            } else {
                ok = closes.isEmpty && errors > 0
            }
            let codes = closes.keys.sorted().map { "\($0):\(closes[$0]!)" }.joined(separator: ",")
            let expected = kind.expectedClose.map(String.init) ?? "none, error 103 replies"
            let count = slots.withLock { $0.count }
            return (
                "abusers: kind=\(kind.rawValue) connections=\(count) connects=\(connects.load(ordering: .relaxed)) close_codes={\(codes)} error_replies=\(errors) expected=\(expected) \(ok ? "ok" : "WRONG")",
                ok
            )
        }
    }

    /// Publishes at `rate` for `seconds` from `publishers` (at most `maxInFlight` unanswered) and
    /// answers the latencies sampled meanwhile, in nanoseconds, sorted.
    static func pacedPublishing(
        publishers: [Publisher], channels: Int, seconds: Int, rate: Int, maxInFlight: Int, stats: Stats
    ) async throws -> (published: Int, deliveries: Int, elapsed: Double, latencies: [Int64]) {
        stats.latencies.withLock { $0.removeAll() }
        let startDeliveries = stats.deliveries.load(ordering: .relaxed)
        let alreadyPublished = stats.answered
        let start = Date()
        var published = 0
        while Date().timeIntervalSince(start) < Double(seconds) {
            let due = Int(Date().timeIntervalSince(start) * Double(rate))
            let inFlight = published - (stats.answered - alreadyPublished)
            let count = min(due - published, maxInFlight - inFlight)
            if count > 0 {
                var batches = Array(repeating: [(channel: String, data: String)](), count: publishers.count)
                for _ in 0..<count {
                    batches[published % publishers.count].append(
                        ("bench:ch\(published % channels)", #"{"n":\#(published),"t":\#(nowNanos())}"#))
                    published += 1
                }
                for (index, batch) in batches.enumerated() where !batch.isEmpty { publishers[index].send(batch) }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let elapsed = Date().timeIntervalSince(start)
        _ = await waitUntil(10) { stats.answered - alreadyPublished >= published }
        try? await Task.sleep(for: .milliseconds(300))
        let latencies = stats.latencies.withLock { $0 }.sorted()
        return (published, stats.deliveries.load(ordering: .relaxed) - startDeliveries, elapsed, latencies)
    }

    static func abuse(_ options: Options) async throws {
        let target = try Target(options)
        let subscribers = options.int("subscribers", 10000)
        let channels = options.int("channels", 1000)
        let seconds = options.int("seconds", 15)
        let rate = options.int("rate", 1000)
        let publisherCount = options.int("publishers", 16)
        let maxInFlight = options.int("in-flight", 2000)
        let percent = Double(options["abusive-percent"] ?? "1") ?? 1
        let perKind = max(1, Int((Double(subscribers) * percent / 100 / Double(AbuseKind.allCases.count)).rounded()))
        let stats = Stats(recordLatency: true, sampleEvery: options.int("sample-every", 4))
        try await withConnections(target: target, count: subscribers, channel: { "bench:ch\($0 % channels)" }, stats: stats) {
            var publishers: [Publisher] = []
            for _ in 0..<publisherCount { publishers.append(try await Publisher(target: target, stats: stats)) }
            defer { for publisher in publishers { publisher.channel.close(promise: nil) } }
            _ = await waitUntil(10) { stats.ready.load(ordering: .relaxed) >= subscribers + publisherCount }

            func report(_ name: String, _ run: (published: Int, deliveries: Int, elapsed: Double, latencies: [Int64]), _ window: CPUWindow) -> Double {
                func percentile(_ p: Double) -> Double {
                    guard !run.latencies.isEmpty else { return .nan }
                    return Double(run.latencies[min(run.latencies.count - 1, Int(Double(run.latencies.count) * p))]) / 1e6
                }
                print(String(
                    format: "abuse.%@: subscribers=%d published=%d deliveries=%d in %.1fs latency_p50=%.1fms latency_p99=%.1fms %@",
                    name, subscribers, run.published, run.deliveries, run.elapsed, percentile(0.5), percentile(0.99), window.summary))
                return percentile(0.99)
            }

            let cleanWindow = CPUWindow(serverPID: target.serverPID)
            let clean = try await pacedPublishing(
                publishers: publishers, channels: channels, seconds: seconds, rate: rate, maxInFlight: maxInFlight, stats: stats)
            let cleanP99 = report("clean", clean, cleanWindow)

            let abusers = AbuseKind.allCases.map { Abusers(kind: $0, count: perKind, target: target) }
            let misbehaving = Task {
                while !Task.isCancelled {
                    for group in abusers { await group.tick() }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            // The abusers connect and start before the measured window.
            try await Task.sleep(for: .seconds(2))
            let dirtyWindow = CPUWindow(serverPID: target.serverPID)
            let dirty = try await pacedPublishing(
                publishers: publishers, channels: channels, seconds: seconds, rate: rate, maxInFlight: maxInFlight, stats: stats)
            misbehaving.cancel()
            _ = await misbehaving.value
            let dirtyP99 = report("with_abusers", dirty, dirtyWindow)
            for group in abusers { group.close() }

            var ok = true
            for group in abusers {
                let (line, kindOK) = group.summary()
                print(line)
                ok = ok && kindOK
            }
            let ratio = dirtyP99 / cleanP99
            print(String(
                format: "abuse: abusive_connections=%d (%.1f%% of %d) p99_clean=%.1fms p99_with_abusers=%.1fms ratio=%.2f goal<=2.00 %@",
                perKind * AbuseKind.allCases.count, percent, subscribers, cleanP99, dirtyP99, ratio, ratio <= 2 ? "met" : "NOT MET"))
            try checkPublishes(published: clean.published + dirty.published, stats: stats)
            if !ok { throw GatewayLoadError.failed("FAIL: a misbehaving kind was not disconnected with its code (see abusers: lines)") }
        }
    }
}
