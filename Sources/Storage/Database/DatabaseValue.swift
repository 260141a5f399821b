import Foundation

/// A statement parameter or a column value.
public enum DatabaseValue: Sendable, Hashable {
    case int(Int64)
    case double(Double)
    case string(String)
    case blob(Data)
    /// Stored as DATETIME(6) in UTC.
    case date(Date)
    case null

    public static func blob(_ bytes: [UInt8]) -> DatabaseValue { .blob(Data(bytes)) }
    public static func bool(_ value: Bool) -> DatabaseValue { .int(value ? 1 : 0) }
    public static func int(_ value: Int) -> DatabaseValue { .int(Int64(value)) }

    public var isNull: Bool { if case .null = self { true } else { false } }

    /// Integers, integral doubles and numeric strings (DECIMAL results such as SUM()) read as Int64.
    public var int: Int64? {
        switch self {
        case .int(let v): v
        case .double(let v): v.rounded() == v ? Int64(exactly: v) : nil
        case .string(let s): Int64(s) ?? Double(s).flatMap { $0.rounded() == $0 ? Int64(exactly: $0) : nil }
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case .double(let v): v
        case .int(let v): Double(v)
        case .string(let s): Double(s)
        default: nil
        }
    }

    public var string: String? {
        switch self {
        case .string(let s): s
        case .blob(let d): String(data: d, encoding: .utf8)
        default: nil
        }
    }

    public var data: Data? {
        switch self {
        case .blob(let d): d
        case .string(let s): Data(s.utf8)
        default: nil
        }
    }

    public var date: Date? { if case .date(let d) = self { d } else { nil } }
}

extension DatabaseValue {
    /// `.null` for nil, otherwise the wrapped value.
    public static func optional(_ value: String?) -> DatabaseValue { value.map { .string($0) } ?? .null }
    public static func optional(_ value: Int64?) -> DatabaseValue { value.map { .int($0) } ?? .null }
    public static func optional(_ value: Date?) -> DatabaseValue { value.map { .date($0) } ?? .null }
}

/// Column names of one result set, shared by its rows.
public final class ColumnSet: Sendable {
    public let names: [String]
    private let indexByName: [String: Int]

    init(names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name] == nil { index[name] = i }
        indexByName = index
    }

    public func index(of name: String) -> Int? { indexByName[name] }
}

/// One result row with typed accessors by column name or index.
public struct Row: Sendable {
    public let columns: ColumnSet
    public let values: [DatabaseValue]

    public init(columns: ColumnSet, values: [DatabaseValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript(index: Int) -> DatabaseValue { values[index] }

    /// `.null` when the column does not exist.
    public subscript(name: String) -> DatabaseValue {
        columns.index(of: name).map { values[$0] } ?? .null
    }

    func value(_ column: String) throws(DatabaseError) -> DatabaseValue {
        guard let index = columns.index(of: column) else {
            throw DatabaseError(code: .decoding, message: "no column `\(column)` in result (\(columns.names.joined(separator: ", ")))")
        }
        return values[index]
    }

    private func required<T>(_ column: String, _ type: String, _ get: (DatabaseValue) -> T?) throws(DatabaseError) -> T {
        let value = try value(column)
        guard let result = get(value) else {
            throw DatabaseError(code: .decoding, message: "column `\(column)` is \(value), expected \(type)")
        }
        return result
    }

    private func optional<T>(_ column: String, _ type: String, _ get: (DatabaseValue) -> T?) throws(DatabaseError) -> T? {
        let value = try value(column)
        if value.isNull { return nil }
        guard let result = get(value) else {
            throw DatabaseError(code: .decoding, message: "column `\(column)` is \(value), expected \(type) or NULL")
        }
        return result
    }

    public func int(_ column: String) throws(DatabaseError) -> Int64 { try required(column, "an integer") { $0.int } }
    public func double(_ column: String) throws(DatabaseError) -> Double { try required(column, "a number") { $0.double } }
    public func string(_ column: String) throws(DatabaseError) -> String { try required(column, "a string") { $0.string } }
    public func data(_ column: String) throws(DatabaseError) -> Data { try required(column, "bytes") { $0.data } }
    public func date(_ column: String) throws(DatabaseError) -> Date { try required(column, "a date") { $0.date } }
    public func bool(_ column: String) throws(DatabaseError) -> Bool { try int(column) != 0 }

    public func optionalInt(_ column: String) throws(DatabaseError) -> Int64? { try optional(column, "an integer") { $0.int } }
    public func optionalDouble(_ column: String) throws(DatabaseError) -> Double? { try optional(column, "a number") { $0.double } }
    public func optionalString(_ column: String) throws(DatabaseError) -> String? { try optional(column, "a string") { $0.string } }
    public func optionalData(_ column: String) throws(DatabaseError) -> Data? { try optional(column, "bytes") { $0.data } }
    public func optionalDate(_ column: String) throws(DatabaseError) -> Date? { try optional(column, "a date") { $0.date } }

    /// A column holding the raw value of a `RawRepresentable` enum.
    public func enumValue<E: RawRepresentable>(_ column: String, as type: E.Type = E.self) throws(DatabaseError) -> E
    where E.RawValue == String {
        let raw = try string(column)
        guard let value = E(rawValue: raw) else {
            throw DatabaseError(code: .decoding, message: "column `\(column)` holds unknown \(E.self) value `\(raw)`")
        }
        return value
    }

    /// A JSON column decoded with `JSONDecoder`.
    public func json<T: Decodable>(_ column: String, as type: T.Type = T.self) throws(DatabaseError) -> T {
        let data = try data(column)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw DatabaseError(code: .decoding, message: "column `\(column)` is not valid JSON for \(T.self): \(error)")
        }
    }
}

/// What a statement without a result set reports.
public struct ExecuteResult: Sendable, Hashable {
    public var affectedRows: Int64
    /// The AUTO_INCREMENT id of the first inserted row, 0 when none.
    public var lastInsertID: Int64
}

extension Date {
    /// Now, rounded to the microsecond the database keeps, so a stored date reads back equal.
    public static func databaseNow() -> Date { Date().roundedToMicroseconds() }

    public func roundedToMicroseconds() -> Date {
        Date(timeIntervalSince1970: (timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
    }
}

/// JSON text for a JSON column.
func jsonValue<T: Encodable>(_ value: T) throws(DatabaseError) -> DatabaseValue {
    do {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return .string(String(decoding: try encoder.encode(value), as: UTF8.self))
    } catch {
        throw DatabaseError(code: .decoding, message: "cannot encode \(T.self) as JSON: \(error)")
    }
}
