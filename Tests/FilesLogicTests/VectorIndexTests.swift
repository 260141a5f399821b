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

    @Test func aTopicMaskRanksOnlyThatTopicsRowsOfTheSameIndex() {
        var generator = SplitMix(seed: 7)
        var index = VectorIndex(dimension: 37)
        var vectors: [[Float]] = []
        // Rows of topics 1, 2 and none, interleaved.
        let topicOf: (Int) -> Int64? = { row in [1, 2, nil][row % 3] }
        for row in 0..<300 {
            let vector = Self.random(37, &generator)
            vectors.append(vector)
            index.append(chunkID: Int64(row + 1), fileID: Int64(row % 3), topicID: topicOf(row), vector: vector)
        }
        #expect(index.topics == [1, 2])
        #expect(index.hasRows(inAnyOf: [2, 9]))
        #expect(!index.hasRows(inAnyOf: [9]))
        let query = Self.random(37, &generator)
        for topics: Set<Int64> in [[1], [2], [1, 2]] {
            let expected = vectors.indices.filter { topicOf($0).map(topics.contains) ?? false }
                .map { ($0, VectorCoding.cosineSimilarity(query, vectors[$0])) }
                .sorted { $0.1 > $1.1 }.prefix(10).map(\.0)
            #expect(index.topK(query, k: 10, topics: topics).map(\.row) == Array(expected))
        }
        #expect(index.topK(query, k: 10, topics: []).isEmpty)
        #expect(index.topK(query, k: 10, topics: [9]).isEmpty)
        // Unmasked: every row, as before.
        #expect(index.topK(query, k: 300).count == 300)
    }

    @Test func aScopePrefersItsTopicsOnlyWhenTheyHaveRows() {
        var index = VectorIndex(dimension: 2)
        index.append(chunkID: 1, fileID: 1, topicID: 5, vector: [1, 0])
        index.append(chunkID: 2, fileID: 2, vector: [0, 1])
        #expect(FileSearch.topicMask(for: .all, in: index) == nil)
        #expect(FileSearch.topicMask(for: .preferring([5]), in: index) == [5])
        #expect(FileSearch.topicMask(for: .preferring([6]), in: index) == nil)
        #expect(FileSearch.topicMask(for: .topics([6]), in: index) == [6])
        // The stored topic of each vector is what the mask compares.
        let stored = [
            StoredVector(chunkID: 1, fileID: 1, bytes: VectorCoding.encode([1, 0]), norm: 1, topicID: 3),
            StoredVector(chunkID: 2, fileID: 2, bytes: VectorCoding.encode([1, 0.1]), norm: 1),
        ]
        let loaded = VectorIndex(dimension: 2, stored: stored)
        #expect(loaded.topicIDs == [3, 0])
        #expect(loaded.topK([1, 0], k: 5, topics: [3]).map(\.row) == [0])
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
