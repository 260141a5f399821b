/// Comparing secrets without telling an attacker, through timing, how much of a guess was right.
public enum ConstantTime {
    /// True when both byte strings are equal; the time taken depends only on their lengths.
    public static func equals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        var right = rhs.makeIterator()
        for byte in lhs {
            difference |= byte ^ (right.next() ?? 0)
        }
        return difference == 0 && lhs.count == rhs.count
    }

    public static func equals(_ lhs: String, _ rhs: String) -> Bool { equals(Array(lhs.utf8), Array(rhs.utf8)) }
}
