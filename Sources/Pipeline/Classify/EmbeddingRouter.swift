import AIProviders
import Foundation
import Logging
import RedisClient

/// A topic with the example phrases the embedding router compares messages with.
public struct TopicExamples: Sendable, Hashable {
    public var topic: String
    public var examples: [String]

    public init(topic: String, examples: [String]) {
        self.topic = topic
        self.examples = examples
    }
}

/// The router's verdict: the nearest topic and how near.
public struct EmbeddingMatch: Sendable, Hashable {
    public var topic: String
    /// Cosine similarity of the nearest example.
    public var score: Float
    /// The best score of any other topic.
    public var runnerUp: Float
    public var example: String
}

/// Routes a message to the topic whose example phrases are nearest in embedding space: for each
/// topic the mean of its `neighbours` best example similarities; it decides when that is at least
/// `threshold` and ahead of the next topic by `margin`. Example embeddings are cached in
/// process and in Redis (`emb:{model}:{hash}`, float32, 30 days), so each phrase is embedded once.
public struct EmbeddingRouter: Sendable {
    public var provider: any AIProvider
    public var redis: RedisClient?
    public var threshold: Float
    public var margin: Float
    public var neighbours: Int
    public var cacheTTL: Int
    private let memory: EmbeddingMemo
    private let logger: Logger

    public init(
        provider: any AIProvider, redis: RedisClient?, threshold: Float = 0.4, margin: Float = 0.1, neighbours: Int = 2,
        cacheTTLSeconds: Int = 30 * 86_400, logger: Logger = Logger(label: "switchboard.embedding-router")
    ) {
        self.provider = provider
        self.redis = redis
        self.threshold = threshold
        self.margin = margin
        self.neighbours = max(1, neighbours)
        self.cacheTTL = cacheTTLSeconds
        self.memory = EmbeddingMemo()
        self.logger = logger
    }

    /// The nearest topic, or nil when none is near enough (or no topic has examples).
    /// The second value is the message's best match even when it did not decide (for logs).
    public func route(_ message: String, topics: [TopicExamples]) async throws -> (decided: EmbeddingMatch?, best: EmbeddingMatch?, usage: TokenUsage?) {
        let topics = topics.filter { !$0.examples.isEmpty }
        guard !topics.isEmpty else { return (nil, nil, nil) }
        let phrases = Array(Set(topics.flatMap(\.examples)))
        let (vectors, usage) = try await embeddings(for: phrases + [message], cacheAllBut: message)
        guard let query = vectors[message] else { return (nil, nil, usage) }
        var scored: [(topic: String, score: Float, example: String)] = []
        for topic in topics {
            let similarities = topic.examples.compactMap { example in vectors[example].map { (Self.cosine(query, $0), example) } }
                .sorted { $0.0 > $1.0 }
            guard let best = similarities.first else { continue }
            let top = similarities.prefix(neighbours).map(\.0)
            scored.append((topic.topic, top.reduce(0, +) / Float(top.count), best.1))
        }
        scored.sort { $0.score > $1.score }
        guard let first = scored.first else { return (nil, nil, usage) }
        let match = EmbeddingMatch(topic: first.topic, score: first.score, runnerUp: scored.dropFirst().first?.score ?? 0, example: first.example)
        let decided = match.score >= threshold && match.score - match.runnerUp >= margin
        return (decided ? match : nil, match, usage)
    }

    /// Vectors for every text; cached ones from memory or Redis, the rest embedded in one call.
    private func embeddings(for texts: [String], cacheAllBut uncached: String) async throws -> ([String: [Float]], TokenUsage?) {
        let model = provider.model(for: .embed)
        var vectors: [String: [Float]] = [:]
        var missing: [String] = []
        for text in texts {
            if text != uncached, let vector = await memory.get(model, text) { vectors[text] = vector } else { missing.append(text) }
        }
        if let redis, missing.count > 1 {
            let cacheable = missing.filter { $0 != uncached }
            let keys = cacheable.map { redis.key(Self.cacheKey(model: model, text: $0)) }
            if !keys.isEmpty, let reply = try? await redis.send(RedisCommand("MGET", arguments: keys)).array {
                for (text, value) in zip(cacheable, reply) {
                    if let bytes = value.bytes, let vector = Self.decode(bytes) {
                        vectors[text] = vector
                        await memory.set(model, text, vector)
                    }
                }
                missing.removeAll { vectors[$0] != nil }
            }
        }
        guard !missing.isEmpty else { return (vectors, nil) }
        let result = try await provider.embed(missing)
        for (text, vector) in zip(missing, result.vectors) {
            vectors[text] = vector
            guard text != uncached else { continue }
            await memory.set(model, text, vector)
            if let redis {
                do {
                    _ = try await redis.set(Self.cacheKey(model: model, text: text), Self.encode(vector), expiration: .seconds(cacheTTL))
                } catch {
                    logger.debug("embedding not cached in Redis", metadata: ["error": "\(error)"])
                }
            }
        }
        return (vectors, result.usage)
    }

    static func cacheKey(model: String, text: String) -> String {
        // Two FNV-1a 64 hashes (different seeds): 128 bits, enough to tell phrases apart.
        func fnv(_ seed: UInt64) -> String {
            var hash = seed
            for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            return String(hash, radix: 16)
        }
        return "emb:\(model):\(fnv(14_695_981_039_346_656_037))\(fnv(0x9E37_79B9_7F4A_7C15))"
    }

    static func encode(_ vector: [Float]) -> [UInt8] {
        vector.withUnsafeBufferPointer { Array(UnsafeRawBufferPointer($0)) }
    }

    static func decode(_ bytes: [UInt8]) -> [Float]? {
        guard !bytes.isEmpty, bytes.count % 4 == 0 else { return nil }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot: Float = 0, normA: Float = 0, normB: Float = 0
        for index in a.indices {
            dot += a[index] * b[index]
            normA += a[index] * a[index]
            normB += b[index] * b[index]
        }
        let norm = (normA * normB).squareRoot()
        return norm > 0 ? dot / norm : 0
    }
}

/// Example embeddings already seen by this process.
actor EmbeddingMemo {
    private var vectors: [String: [Float]] = [:]
    private let limit = 10_000

    func get(_ model: String, _ text: String) -> [Float]? { vectors[model + "\u{0}" + text] }

    func set(_ model: String, _ text: String, _ vector: [Float]) {
        if vectors.count >= limit { vectors.removeAll() }
        vectors[model + "\u{0}" + text] = vector
    }
}
