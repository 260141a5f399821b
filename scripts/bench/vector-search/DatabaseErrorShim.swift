// Stands in for Storage's DatabaseError so that scripts/bench/vectors.sh can compile
// Sources/Storage/Vectors.swift and Sources/Files/VectorIndex.swift alone, optimized, in seconds.
public struct DatabaseError: Error {
    public enum Code { case decoding }
    public var code: Code
    public var message: String
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
}
