/// `JSONValue` (a decoded JSON value that re-emits verbatim), shared by the gateway's protocol,
/// the api's bodies checked field by field and the configuration's sections, and `JSONWriter`
/// (compact JSON text built by hand).
import Foundation

/// A JSON value decoded from a request, kept so payloads can be re-emitted verbatim as raw JSON
/// (integers stay integers: a 64-bit id is not rounded through a `Double`).
public indirect enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Compact JSON text of this value (no raw newlines, so it can travel in a newline-batched frame).
    public var serialized: String {
        var writer = JSONWriter()
        writer.value(self)
        return writer.output
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var int64Value: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value): return Int64(exactly: value.rounded(.towardZero))
        case .string(let value): return Int64(value)
        default: return nil
        }
    }

    /// A number as a `Double` (an integer or not); nil for anything else.
    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// Parses JSON text; nil when it is not valid JSON.
    public static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        if let value = bytes.withContiguousStorageIfAvailable({ JSONParser.parse(UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return Array(bytes).withUnsafeBytes { JSONParser.parse($0) }
    }
}

/// Builds compact JSON text by hand: replies and pushes are written once per message (and once per
/// publication for fan-out), so this avoids Foundation's encoder and keeps the omitempty rules explicit.
public struct JSONWriter {
    public var output = ""
    private var needsComma = false

    public init(capacity: Int = 64) {
        output.reserveCapacity(capacity)
    }

    public mutating func beginObject() { open("{") }
    public mutating func endObject() { close("}") }
    public mutating func beginArray() { open("[") }
    public mutating func endArray() { close("]") }

    private mutating func open(_ bracket: Character) {
        comma()
        output.append(bracket)
        needsComma = false
    }

    private mutating func close(_ bracket: Character) {
        output.append(bracket)
        needsComma = true
    }

    public mutating func key(_ name: String) {
        comma()
        Self.appendQuoted(name, to: &output)
        output.append(":")
        needsComma = false
    }

    public mutating func string(_ value: String) {
        comma()
        Self.appendQuoted(value, to: &output)
        needsComma = true
    }

    public mutating func raw(_ json: String) {
        comma()
        output.append(json)
        needsComma = true
    }

    public mutating func int<I: BinaryInteger>(_ value: I) {
        comma()
        output.append(String(value))
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        comma()
        output.append(value ? "true" : "false")
        needsComma = true
    }

    public mutating func null() {
        comma()
        output.append("null")
        needsComma = true
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .double(let number):
            comma()
            if number.isFinite {
                if number == number.rounded(), abs(number) < 1e15 {
                    output.append(String(Int64(number)))
                } else {
                    output.append("\(number)")
                }
            } else {
                output.append("null")
            }
            needsComma = true
        case .string(let text): string(text)
        case .array(let items):
            beginArray()
            for item in items { self.value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                key(name)
                self.value(member)
            }
            endObject()
        }
    }

    // Convenience for `"name": value` members.
    public mutating func field(_ name: String, _ value: String) { key(name); string(value) }
    public mutating func field<I: BinaryInteger>(_ name: String, _ value: I) { key(name); int(value) }
    public mutating func field(_ name: String, _ value: Bool) { key(name); bool(value) }
    public mutating func rawField(_ name: String, _ json: String) { key(name); raw(json) }

    private mutating func comma() {
        if needsComma { output.append(",") }
    }

    /// Whether `text` goes into a JSON string as it is (no control character, quote or backslash).
    public static func needsNoEscaping(_ text: String) -> Bool {
        func plain(_ byte: UInt8) -> Bool { byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") }
        // Over the bytes in place (every key and string of every reply comes here); a bridged
        // string has none, and is walked.
        if let answer = text.utf8.withContiguousStorageIfAvailable({ bytes in bytes.allSatisfy(plain) }) { return answer }
        return text.utf8.allSatisfy(plain)
    }

    public static func appendQuoted(_ text: String, to output: inout String) {
        output.append("\"")
        if needsNoEscaping(text) {
            output.append(text)
        } else {
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": output.append("\\\"")
                case "\\": output.append("\\\\")
                case "\n": output.append("\\n")
                case "\r": output.append("\\r")
                case "\t": output.append("\\t")
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        output.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                    } else {
                        output.unicodeScalars.append(scalar)
                    }
                }
            }
        }
        output.append("\"")
    }
}
