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
}

extension String: RESPArgument { public var respBytes: [UInt8] { Array(utf8) } }
extension Substring: RESPArgument { public var respBytes: [UInt8] { Array(utf8) } }
extension Int: RESPArgument { public var respBytes: [UInt8] { Array(String(self).utf8) } }
extension Int64: RESPArgument { public var respBytes: [UInt8] { Array(String(self).utf8) } }
extension UInt64: RESPArgument { public var respBytes: [UInt8] { Array(String(self).utf8) } }
extension Double: RESPArgument {
    public var respBytes: [UInt8] {
        if self == .infinity { return Array("+inf".utf8) }
        if self == -.infinity { return Array("-inf".utf8) }
        return Array(String(self).utf8)
    }
}
extension Array: RESPArgument where Element == UInt8 { public var respBytes: [UInt8] { self } }
extension ByteBuffer: RESPArgument { public var respBytes: [UInt8] { Array(readableBytesView) } }

/// One command: its name followed by its arguments, each binary-safe.
public struct RedisCommand: Sendable {
    public var arguments: [[UInt8]]

    public init(_ name: String, _ args: any RESPArgument...) {
        self.init(name, arguments: args)
    }

    public init(_ name: String, arguments: [any RESPArgument]) {
        var all: [[UInt8]] = []
        all.reserveCapacity(arguments.count + 1)
        all.append(Array(name.utf8))
        for argument in arguments { all.append(argument.respBytes) }
        self.arguments = all
    }

    /// A command from already encoded arguments (the name first).
    public init(rawArguments: [[UInt8]]) {
        self.arguments = rawArguments
    }

    /// The command name in upper case, for logs and routing decisions.
    public var name: String {
        String(decoding: arguments.first ?? [], as: UTF8.self).uppercased()
    }

    /// Encodes the command as a RESP array of bulk strings.
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeDecimal(arguments.count)
        buffer.writeCRLF()
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeDecimal(argument.count)
            buffer.writeCRLF()
            buffer.writeBytes(argument)
            buffer.writeCRLF()
        }
    }

    var encodedSizeHint: Int {
        arguments.reduce(16) { $0 + $1.count + 16 }
    }
}

extension ByteBuffer {
    fileprivate mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A))
    }

    fileprivate mutating func writeDecimal(_ value: Int) {
        if value >= 0 && value < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(value))
        } else {
            writeString(String(value))
        }
    }
}
