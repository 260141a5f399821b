import Files
import Foundation
import Storage
import Testing

@Suite struct VectorIndexTests {
    static func random(_ dimension: Int, _ generator: inout some RandomNumberGenerator) -> [Float] {
        (0..<dimension).map { _ in Float.random(in: -1...1, using: &generator) }
    }

    @Test(arguments: [384, 37, 16, 3])
    func topKIsTheExactCosineRanking(dimension: Int) {
        var generator = SplitMix(seed: UInt64(dimension))
        var index = VectorIndex(dimension: dimension)
        var vectors: [[Float]] = []
        for row in 0..<500 {
            let vector = Self.random(dimension, &generator)
            vectors.append(vector)
            index.append(chunkID: Int64(row + 1), fileID: 1, vector: vector)
        }
        for _ in 0..<5 {
            let query = Self.random(dimension, &generator)
            let expected = vectors.indices.map { ($0, VectorCoding.cosineSimilarity(query, vectors[$0])) }
                .sorted { $0.1 > $1.1 }.prefix(10)
            let found = index.topK(query, k: 10)
            #expect(found.map(\.row) == expected.map(\.0))
            for (a, b) in zip(found, expected) { #expect(abs(a.score - b.1) < 1e-4) }
        }
    }

    @Test func fewerRowsThanKAndZeroQueries() {
        var index = VectorIndex(dimension: 3)
        index.append(chunkID: 1, fileID: 1, vector: [1, 0, 0])
        index.append(chunkID: 2, fileID: 1, vector: [0, 1, 0])
        #expect(index.topK([1, 0.1, 0], k: 10).map(\.row) == [0, 1])
        #expect(index.topK([0, 0, 0], k: 10).isEmpty)
        #expect(index.topK([1, 0], k: 10).isEmpty)
    }

    @Test func storedBytesLoadAsTheyWereEncoded() {
        let vector: [Float] = [3, 4]
        let stored = StoredVector(chunkID: 9, fileID: 2, bytes: VectorCoding.encode(vector), norm: 5)
        let index = VectorIndex(dimension: 2, stored: [stored, StoredVector(chunkID: 10, fileID: 2, bytes: Data([1, 2]), norm: 0)])
        #expect(index.count == 1)
        #expect(index.chunkIDs == [9])
        #expect(index.topK([3, 4], k: 1).first.map { abs($0.score - 1) < 1e-6 } == true)
    }
}

/// A seeded generator: the same vectors every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
