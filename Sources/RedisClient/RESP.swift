import NIOCore

/// A RESP reply.
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    /// An `-ERR` reply. Only seen inside `pipeline()` results and arrays; `send()` throws instead.
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    /// `$-1` / `*-1`
    case null
    case array([RESPValue])

    /// A simple or bulk string as UTF-8.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    /// An integer, or a string that parses as one.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .simpleString, .bulkString: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .simpleString, .bulkString:
            guard let s = string else { return nil }
            switch s {
            case "inf", "+inf": return .infinity
            case "-inf": return -.infinity
            default: return Double(s)
            }
        default: return nil
        }
    }

    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let b): return b
        case .simpleString(let s): return Array(s.utf8)
        default: return nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The message of an `.error` reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}

extension RESPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simpleString(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulkString(let b): return "\"\(String(decoding: b, as: UTF8.self))\""
        case .null: return "(nil)"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

/// Anything usable as a command argument.
public protocol RESPArgument: Sendable {
    var respBytes: [UInt8] { get }
    /// Writes the argument as a RESP bulk string (`$<length>\r\n<bytes>\r\n`). The types here
    /// write their bytes straight into the command's buffer; the default goes through `respBytes`.
    func writeRESPBulk(into buffer: inout ByteBuffer)
    /// About how many bytes the argument takes, to size the command's buffer.
    var respSizeHint: Int { get }
}

extension RESPArgument {
    public func writeRESPBulk(into buffer: inout ByteBuffer) {
        let bytes = respBytes
        buffer.writeBulkHeader(bytes.count)
        buffer.writeBytes(bytes)
        buffer.writeCRLF()
    }

    public var respSizeHint: Int { 24 }
}

/// Text as its UTF-8 bytes.
extension RESPArgument where Self: StringProtocol {
    public var respBytes: [UInt8] { Array(utf8) }
    public var respSizeHint: Int { utf8.count + 16 }
    public func writeRESPBulk(into buffer: inout ByteBuffer) {
        buffer.writeBulkHeader(utf8.count)
        buffer.writeBytes(utf8)
        buffer.writeCRLF()
    }
}

extension String: RESPArgument {}
extension Substring: RESPArgument {}

/// Integers as their decimal text.
extension RESPArgument where Self: BinaryInteger {
    public var respBytes: [UInt8] { Array(String(self).utf8) }
    public func writeRESPBulk(into buffer: inout ByteBuffer) { String(self).writeRESPBulk(into: &buffer) }
}

extension Int: RESPArgument {}
extension Int64: RESPArgument {}
extension UInt64: RESPArgument {}

extension Double: RESPArgument {
    public var respBytes: [UInt8] {
        if self == .infinity { return Array("+inf".utf8) }
        if self == -.infinity { return Array("-inf".utf8) }
        return Array(String(self).utf8)
    }
}

extension Array: RESPArgument where Element == UInt8 {
    public var respBytes: [UInt8] { self }
    public var respSizeHint: Int { count + 16 }
    public func writeRESPBulk(into buffer: inout ByteBuffer) {
        buffer.writeBulkHeader(count)
        buffer.writeBytes(self)
        buffer.writeCRLF()
    }
}

extension ByteBuffer: RESPArgument {
    public var respBytes: [UInt8] { Array(readableBytesView) }
    public var respSizeHint: Int { readableBytes + 16 }
    public func writeRESPBulk(into buffer: inout ByteBuffer) {
        buffer.writeBulkHeader(readableBytes)
        buffer.writeImmutableBuffer(self)
        buffer.writeCRLF()
    }
}

/// Up to four strings sent as one argument, without joining them first: a key with its
/// prefixes, say (`RESPConcatenation(clientPrefix, enginePrefix, "history:", channel)`).
public struct RESPConcatenation: RESPArgument {
    private let parts: (String, String, String, String)

    public init(_ first: String, _ second: String, _ third: String = "", _ fourth: String = "") {
        parts = (first, second, third, fourth)
    }

    private var count: Int { parts.0.utf8.count + parts.1.utf8.count + parts.2.utf8.count + parts.3.utf8.count }

    public var respBytes: [UInt8] { Array((parts.0 + parts.1 + parts.2 + parts.3).utf8) }
    public var respSizeHint: Int { count + 16 }
    public func writeRESPBulk(into buffer: inout ByteBuffer) {
        buffer.writeBulkHeader(count)
        buffer.writeString(parts.0)
        buffer.writeString(parts.1)
        buffer.writeString(parts.2)
        buffer.writeString(parts.3)
        buffer.writeCRLF()
    }
}

/// One command: its name followed by its arguments, each binary-safe. Kept encoded (a RESP
/// array of bulk strings in one buffer), so building one costs one buffer, not one array per
/// argument.
public struct RedisCommand: Sendable {
    private let encoded: ByteBuffer

    public init(_ name: String, _ args: any RESPArgument...) {
        self.init(name, arguments: args)
    }

    public init(_ name: String, arguments: [any RESPArgument]) {
        var size = name.utf8.count + 32
        for argument in arguments { size += argument.respSizeHint }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeDecimal(arguments.count + 1)
        buffer.writeCRLF()
        name.writeRESPBulk(into: &buffer)
        for argument in arguments { argument.writeRESPBulk(into: &buffer) }
        encoded = buffer
    }

    /// A command from already encoded arguments (the name first).
    public init(rawArguments: [[UInt8]]) {
        var buffer = ByteBufferAllocator().buffer(capacity: rawArguments.reduce(16) { $0 + $1.count + 16 })
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeDecimal(rawArguments.count)
        buffer.writeCRLF()
        for argument in rawArguments { argument.writeRESPBulk(into: &buffer) }
        encoded = buffer
    }

    /// The arguments, the name first, read back from the encoding (for logs, tests and tools).
    public var arguments: [[UInt8]] {
        var buffer = encoded
        guard let count = buffer.readRESPLength(marker: UInt8(ascii: "*"))?.value else { return [] }
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(count)
        for _ in 0..<count {
            guard let length = buffer.readRESPLength(marker: UInt8(ascii: "$"))?.value, let bytes = buffer.readBytes(length: length) else {
                break
            }
            arguments.append(bytes)
            buffer.moveReaderIndex(forwardBy: 2)
        }
        return arguments
    }

    /// The command name in upper case, for logs and routing decisions.
    public var name: String {
        var buffer = encoded
        guard buffer.readRESPLength(marker: UInt8(ascii: "*"))?.value != nil, let length = buffer.readRESPLength(marker: UInt8(ascii: "$"))?.value,
            let name = buffer.readString(length: length)
        else { return "" }
        return name.uppercased()
    }

    /// Appends the encoded command.
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeImmutableBuffer(encoded)
    }

    var encodedSizeHint: Int { encoded.readableBytes }
}

extension ByteBuffer {
    fileprivate mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A))
    }

    fileprivate mutating func writeBulkHeader(_ length: Int) {
        writeInteger(UInt8(ascii: "$"))
        writeDecimal(length)
        writeCRLF()
    }

    fileprivate mutating func writeDecimal(_ value: Int) {
        if value >= 0 && value < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(value))
        } else {
            writeString(String(value))
        }
    }
}
