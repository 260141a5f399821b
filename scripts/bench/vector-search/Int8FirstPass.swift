// The int8-quantized first pass measured against exact float32 ranking (scripts/bench/vectors.sh
// with INT8=1): every normalized row of a VectorIndex quantized to int8 (× 127), scanned with
// integer SIMD dot products to keep the best `candidates` rows, which are then re-ranked exactly
// in float32. Not part of the server: docs/files.md gives the measured result.
import Storage

struct Int8FirstPass {
    let dimension: Int
    let count: Int
    /// `count × dimension` codes, row after row.
    let codes: [Int8]

    init(_ index: VectorIndex) {
        dimension = index.dimension
        count = index.count
        codes = index.values.map { Int8(max(-127, min(127, ($0 * 127).rounded()))) }
    }

    func topK(_ query: [Float], k: Int, candidates: Int, index: VectorIndex) -> [(row: Int, score: Float)] {
        let norm = VectorCoding.norm(query)
        guard norm > 0, query.count == dimension else { return [] }
        let normalized = query.map { $0 / norm }
        let q = normalized.map { Int8(max(-127, min(127, ($0 * 127).rounded()))) }
        let keep = min(max(k, candidates), count)
        var best: [(row: Int, score: Int32)] = []
        best.reserveCapacity(keep + 1)
        var threshold = Int32.min
        codes.withUnsafeBufferPointer { matrix in
            q.withUnsafeBufferPointer { qp in
                for row in 0..<count {
                    let score = Self.dot(qp.baseAddress!, matrix.baseAddress! + row * dimension, dimension)
                    if best.count == keep && score <= threshold { continue }
                    var i = best.count
                    while i > 0 && best[i - 1].score < score { i -= 1 }
                    best.insert((row, score), at: i)
                    if best.count > keep { best.removeLast() }
                    if best.count == keep { threshold = best[keep - 1].score }
                }
            }
        }
        // Exact float32 scores of the candidates, best first; ties keep the lower row first.
        let rescored: [(row: Int, score: Float)] = index.values.withUnsafeBufferPointer { matrix in
            normalized.withUnsafeBufferPointer { qp in
                best.map { ($0.row, VectorIndex.dot(qp.baseAddress!, matrix.baseAddress! + $0.row * dimension, dimension)) }
            }
        }
        return Array(rescored.sorted { $0.score > $1.score || ($0.score == $1.score && $0.row < $1.row) }.prefix(k))
    }

    /// int8 × int8 products widened to int16 (|127 × 127| fits), summed in int32 lanes.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Int8>, _ b: UnsafePointer<Int8>, _ n: Int) -> Int32 {
        var acc0 = SIMD16<Int32>(repeating: 0)
        var acc1 = SIMD16<Int32>(repeating: 0)
        let rawA = UnsafeRawPointer(a)
        let rawB = UnsafeRawPointer(b)
        var i = 0
        while i + 32 <= n {
            let a0 = SIMD16<Int16>(truncatingIfNeeded: rawA.loadUnaligned(fromByteOffset: i, as: SIMD16<Int8>.self))
            let b0 = SIMD16<Int16>(truncatingIfNeeded: rawB.loadUnaligned(fromByteOffset: i, as: SIMD16<Int8>.self))
            let a1 = SIMD16<Int16>(truncatingIfNeeded: rawA.loadUnaligned(fromByteOffset: i + 16, as: SIMD16<Int8>.self))
            let b1 = SIMD16<Int16>(truncatingIfNeeded: rawB.loadUnaligned(fromByteOffset: i + 16, as: SIMD16<Int8>.self))
            acc0 &+= SIMD16<Int32>(truncatingIfNeeded: a0 &* b0)
            acc1 &+= SIMD16<Int32>(truncatingIfNeeded: a1 &* b1)
            i += 32
        }
        var sum = (acc0 &+ acc1).wrappedSum()
        while i < n {
            sum &+= Int32(a[i]) * Int32(b[i])
            i += 1
        }
        return sum
    }
}
