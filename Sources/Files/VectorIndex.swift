import Foundation
import Storage

/// One owner's vectors of one embedding model in one contiguous block of float32, each row
/// divided by its norm, so that cosine similarity is a dot product. `topK` scans every row
/// (exact search) with SIMD dot products and keeps the best `k` in a small sorted buffer. Each
/// row also carries its file's topic id (0: none): a search limited to some topics skips the
/// other rows before their dot product, over the same vectors (no second copy per topic).
public struct VectorIndex: Sendable {
    public let dimension: Int
    public private(set) var chunkIDs: [Int64]
    public private(set) var fileIDs: [Int64]
    /// The topic of each row's file, 0 when it has none.
    public private(set) var topicIDs: [Int64]
    /// The topics that have at least one row here.
    public private(set) var topics: Set<Int64>
    /// `count × dimension` values, row after row.
    public private(set) var values: [Float]

    public var count: Int { chunkIDs.count }
    /// Memory held by the vectors and ids.
    public var byteCount: Int { values.count * 4 + chunkIDs.count * 24 }

    public init(dimension: Int) {
        self.dimension = dimension
        chunkIDs = []
        fileIDs = []
        topicIDs = []
        topics = []
        values = []
    }

    /// The stored vectors (little-endian float32 bytes), normalized on the way in; rows of another size are skipped.
    public init(dimension: Int, stored: [StoredVector]) {
        self.init(dimension: dimension)
        values.reserveCapacity(stored.count * dimension)
        chunkIDs.reserveCapacity(stored.count)
        fileIDs.reserveCapacity(stored.count)
        topicIDs.reserveCapacity(stored.count)
        var row = [Float](repeating: 0, count: dimension)
        for vector in stored where vector.bytes.count == dimension * 4 {
            vector.bytes.withUnsafeBytes { raw in
                for i in 0..<dimension {
                    row[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            }
            append(chunkID: vector.chunkID, fileID: vector.fileID, topicID: vector.topicID, vector: row)
        }
    }

    /// Adds a vector (normalized here; an all-zero vector is kept as zeros and never scores).
    public mutating func append(chunkID: Int64, fileID: Int64, topicID: Int64? = nil, vector: [Float]) {
        precondition(vector.count == dimension, "vector of \(vector.count) values in an index of \(dimension)")
        let norm = VectorCoding.norm(vector)
        let scale: Float = norm > 0 ? 1 / norm : 0
        for value in vector { values.append(value * scale) }
        chunkIDs.append(chunkID)
        fileIDs.append(fileID)
        topicIDs.append(topicID ?? 0)
        if let topicID { topics.insert(topicID) }
    }

    /// Whether any row belongs to one of `topics`.
    public func hasRows(inAnyOf topics: Set<Int64>) -> Bool { !self.topics.isDisjoint(with: topics) }

    /// The `k` rows most similar to `query` (cosine), best first; ties keep the lower row first.
    /// With `topics`, only rows of those topics are ranked (an empty set ranks none).
    public func topK(_ query: [Float], k: Int, topics: Set<Int64>? = nil) -> [(row: Int, score: Float)] {
        guard query.count == dimension, k > 0, count > 0 else { return [] }
        // A few topic ids, compared in a tight loop: cheaper than hashing per row.
        let mask: [Int64]? = topics.map { Array($0) }
        if let mask, mask.isEmpty { return [] }
        let norm = VectorCoding.norm(query)
        guard norm > 0 else { return [] }
        let normalized = query.map { $0 / norm }
        let keep = min(k, count)
        var best: [(row: Int, score: Float)] = []
        best.reserveCapacity(keep + 1)
        var threshold = -Float.infinity
        values.withUnsafeBufferPointer { matrix in
            normalized.withUnsafeBufferPointer { q in
                let base = matrix.baseAddress!
                let qBase = q.baseAddress!
                for row in 0..<count {
                    if let mask, !mask.contains(topicIDs[row]) { continue }
                    let score = Self.dot(qBase, base + row * dimension, dimension)
                    if best.count == keep && score <= threshold { continue }
                    var index = best.count
                    while index > 0 && best[index - 1].score < score { index -= 1 }
                    best.insert((row, score), at: index)
                    if best.count > keep { best.removeLast() }
                    if best.count == keep { threshold = best[keep - 1].score }
                }
            }
        }
        return best
    }

    /// Dot product with SIMD16 lanes (two accumulators) and a scalar tail.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(repeating: 0)
        var acc1 = SIMD16<Float>(repeating: 0)
        let rawA = UnsafeRawPointer(a)
        let rawB = UnsafeRawPointer(b)
        var i = 0
        while i + 32 <= n {
            acc0 += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += rawA.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
                * rawB.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
            i += 32
        }
        if i + 16 <= n {
            acc0 += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }
}
