import Testing

@testable import Gateway

/// The read-ahead random source: every value is new, across many refills of its pool.
@Suite struct RandomBytesTests {
    @Test func valuesDoNotRepeatAcrossRefills() {
        var generator = RandomBytes()
        // 32 values a refill: 4,000 values take 125 of them.
        let values = (0..<4000).map { _ in generator.next() as UInt64 }
        #expect(Set(values).count == values.count)
        // Every bit position takes both values: no byte of the pool is left unwritten.
        let ored = values.reduce(0, |)
        let anded = values.reduce(~0, &)
        #expect(ored == ~0 && anded == 0)
    }
}
