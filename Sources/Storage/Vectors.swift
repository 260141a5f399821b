import Foundation

/// Embeddings as stored in `chunks.embedding`: float32, little-endian, `dim` values back to back.
public enum VectorCoding {
    public static func encode(_ vector: [Float]) -> Data {
        var data = Data(capacity: vector.count * 4)
        for value in vector {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    public static func decode(_ data: Data, dimension: Int) throws(DatabaseError) -> [Float] {
        guard data.count == dimension * 4 else {
            throw DatabaseError(code: .decoding, message: "vector blob has \(data.count) bytes, expected \(dimension) × 4")
        }
        return data.withUnsafeBytes { raw in
            (0..<dimension).map { i in
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
    }

    /// The Euclidean norm.
    public static func norm(_ vector: [Float]) -> Float {
        vector.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
    }

    /// Cosine similarity in [-1, 1]; 0 when either vector is all zeros or the sizes differ.
    public static func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count, !a.isEmpty else { return 0 }
        var dot: Float = 0
        var normA: Float = 0
        var normB: Float = 0
        for i in a.indices {
            dot += a[i] * b[i]
            normA += a[i] * a[i]
            normB += b[i] * b[i]
        }
        let denominator = (normA * normB).squareRoot()
        return denominator > 0 ? dot / denominator : 0
    }

    /// Cosine similarity between `query` (whose norm is given) and an encoded vector, read straight
    /// from its little-endian bytes; 0 when the sizes differ or the vector is all zeros.
    public static func cosineSimilarity(_ query: [Float], queryNorm: Float, encoded: Data) -> Float {
        guard encoded.count == query.count * 4, queryNorm > 0 else { return 0 }
        return encoded.withUnsafeBytes { raw -> Float in
            var dot: Float = 0
            var norm: Float = 0
            query.withUnsafeBufferPointer { q in
                for i in 0..<q.count {
                    let v = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    dot += q[i] * v
                    norm += v * v
                }
            }
            let denominator = queryNorm * norm.squareRoot()
            return denominator > 0 ? dot / denominator : 0
        }
    }
}

/// One stored vector as the in-process index loads it: the raw float32 bytes and their norm.
public struct StoredVector: Sendable {
    public var chunkID: Int64
    public var fileID: Int64
    public var bytes: Data
    public var norm: Float
    /// The topic of the chunk's file (nil: none).
    public var topicID: Int64?

    public init(chunkID: Int64, fileID: Int64, bytes: Data, norm: Float, topicID: Int64? = nil) {
        self.chunkID = chunkID
        self.fileID = fileID
        self.bytes = bytes
        self.norm = norm
        self.topicID = topicID
    }
}
