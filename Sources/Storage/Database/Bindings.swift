import CMariaDB
import Foundation

/// Input binds for one execution. Every buffer lives until `body` returns, i.e. until
/// `mysql_stmt_execute` has sent the parameters.
enum ParameterBinding {
    static func withBinds<T>(
        _ values: [DatabaseValue], _ body: (UnsafeMutablePointer<MYSQL_BIND>) throws(DatabaseError) -> T
    ) throws(DatabaseError) -> T {
        let capacity = max(values.count, 1)
        let binds = UnsafeMutablePointer<MYSQL_BIND>.allocate(capacity: capacity)
        binds.initialize(repeating: MYSQL_BIND(), count: capacity)
        let lengths = UnsafeMutablePointer<UInt>.allocate(capacity: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        var buffers: [UnsafeMutableRawPointer] = []
        buffers.reserveCapacity(values.count)
        defer {
            for buffer in buffers { buffer.deallocate() }
            binds.deinitialize(count: capacity)
            binds.deallocate()
            lengths.deallocate()
        }
        func allocate(_ byteCount: Int, alignment: Int = 8) -> UnsafeMutableRawPointer {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: alignment)
            buffers.append(buffer)
            return buffer
        }
        for (i, value) in values.enumerated() {
            let bind = binds + i
            switch value {
            case .int(let v):
                let buffer = allocate(8)
                buffer.storeBytes(of: v, as: Int64.self)
                bind.pointee.buffer_type = MYSQL_TYPE_LONGLONG
                bind.pointee.buffer = buffer
                bind.pointee.buffer_length = 8
            case .double(let v):
                let buffer = allocate(8)
                buffer.storeBytes(of: v, as: Double.self)
                bind.pointee.buffer_type = MYSQL_TYPE_DOUBLE
                bind.pointee.buffer = buffer
                bind.pointee.buffer_length = 8
            case .string(let s):
                var s = s
                let count = s.utf8.count
                let buffer = allocate(count, alignment: 1)
                s.withUTF8 { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: count) } }
                bind.pointee.buffer_type = MYSQL_TYPE_STRING
                bind.pointee.buffer = buffer
                bind.pointee.buffer_length = UInt(count)
                lengths[i] = UInt(count)
                bind.pointee.length = lengths + i
            case .blob(let data):
                let count = data.count
                let buffer = allocate(count, alignment: 1)
                data.copyBytes(to: buffer.assumingMemoryBound(to: UInt8.self), count: count)
                bind.pointee.buffer_type = MYSQL_TYPE_BLOB
                bind.pointee.buffer = buffer
                bind.pointee.buffer_length = UInt(count)
                lengths[i] = UInt(count)
                bind.pointee.length = lengths + i
            case .date(let date):
                let buffer = allocate(MemoryLayout<MYSQL_TIME>.stride, alignment: MemoryLayout<MYSQL_TIME>.alignment)
                buffer.initializeMemory(as: MYSQL_TIME.self, repeating: MariaDBTime.time(from: date), count: 1)
                bind.pointee.buffer_type = MYSQL_TYPE_DATETIME
                bind.pointee.buffer = buffer
                bind.pointee.buffer_length = UInt(MemoryLayout<MYSQL_TIME>.size)
            case .null:
                bind.pointee.buffer_type = MYSQL_TYPE_NULL
            }
        }
        return try body(binds)
    }
}

/// Output binds for one result set, sized from the `max_length` that `mysql_stmt_store_result`
/// computed (STMT_ATTR_UPDATE_MAX_LENGTH); a longer value is read with `mysql_stmt_fetch_column`.
final class ResultBinding {
    private enum Kind {
        case integer(unsigned: Bool)
        case real
        case time
        case text
        case binary
    }

    let binds: UnsafeMutablePointer<MYSQL_BIND>
    let columns: ColumnSet
    private let count: Int
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private let errors: UnsafeMutablePointer<my_bool>
    private var buffers: [UnsafeMutableRawPointer] = []
    private var capacities: [Int] = []
    private var kinds: [Kind] = []

    init(fields: UnsafeMutablePointer<MYSQL_FIELD>, count: Int) {
        self.count = count
        binds = .allocate(capacity: count)
        binds.initialize(repeating: MYSQL_BIND(), count: count)
        lengths = .allocate(capacity: count)
        lengths.initialize(repeating: 0, count: count)
        nulls = .allocate(capacity: count)
        nulls.initialize(repeating: 0, count: count)
        errors = .allocate(capacity: count)
        errors.initialize(repeating: 0, count: count)
        var names: [String] = []
        for i in 0..<count {
            let field = fields[i]
            names.append(field.name.map { String(cString: $0) } ?? "")
            let kind: Kind
            let capacity: Int
            let bufferType: enum_field_types
            switch field.type {
            case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_INT24, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_YEAR:
                kind = .integer(unsigned: field.flags & UInt32(UNSIGNED_FLAG) != 0)
                capacity = 8
                bufferType = MYSQL_TYPE_LONGLONG
            case MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE:
                kind = .real
                capacity = 8
                bufferType = MYSQL_TYPE_DOUBLE
            case MYSQL_TYPE_DATE, MYSQL_TYPE_DATETIME, MYSQL_TYPE_TIMESTAMP, MYSQL_TYPE_NEWDATE:
                kind = .time
                capacity = MemoryLayout<MYSQL_TIME>.stride
                bufferType = MYSQL_TYPE_DATETIME
            case MYSQL_TYPE_TINY_BLOB, MYSQL_TYPE_BLOB, MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB,
                MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_STRING, MYSQL_TYPE_VARCHAR, MYSQL_TYPE_JSON, MYSQL_TYPE_GEOMETRY,
                MYSQL_TYPE_BIT:
                kind = field.charsetnr == 63 ? .binary : .text  // 63 is the `binary` character set
                capacity = Int(field.max_length) + 1
                bufferType = MYSQL_TYPE_STRING
            default:  // DECIMAL, TIME, ...: converted to text by the library
                kind = .text
                capacity = max(Int(field.max_length), 64) + 1
                bufferType = MYSQL_TYPE_STRING
            }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            buffers.append(buffer)
            capacities.append(capacity)
            kinds.append(kind)
            binds[i].buffer_type = bufferType
            binds[i].buffer = buffer
            binds[i].buffer_length = UInt(capacity)
            binds[i].length = lengths + i
            binds[i].is_null = nulls + i
            binds[i].error = errors + i
            if case .integer(let unsigned) = kind { binds[i].is_unsigned = unsigned ? 1 : 0 }
        }
        columns = ColumnSet(names: names)
    }

    func deallocate() {
        for buffer in buffers { buffer.deallocate() }
        binds.deinitialize(count: count)
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        errors.deallocate()
    }

    /// The values of the row `mysql_stmt_fetch` just delivered.
    func currentValues(_ statement: UnsafeMutablePointer<MYSQL_STMT>) throws(DatabaseError) -> [DatabaseValue] {
        var values: [DatabaseValue] = []
        values.reserveCapacity(count)
        for i in 0..<count {
            if nulls[i] != 0 {
                values.append(.null)
                continue
            }
            let buffer = buffers[i]
            switch kinds[i] {
            case .integer(let unsigned):
                let raw = buffer.load(as: Int64.self)
                values.append(.int(unsigned ? Int64(truncatingIfNeeded: UInt64(bitPattern: raw)) : raw))
            case .real:
                values.append(.double(buffer.load(as: Double.self)))
            case .time:
                values.append(MariaDBTime.date(from: buffer.load(as: MYSQL_TIME.self)).map { .date($0) } ?? .null)
            case .text, .binary:
                let length = Int(lengths[i])
                let bytes: Data
                if length <= capacities[i] {
                    bytes = Data(bytes: buffer, count: length)
                } else {
                    bytes = try fetchLongColumn(statement, column: i, length: length)
                }
                if case .binary = kinds[i] {
                    values.append(.blob(bytes))
                } else {
                    values.append(.string(String(decoding: bytes, as: UTF8.self)))
                }
            }
        }
        return values
    }

    private func fetchLongColumn(
        _ statement: UnsafeMutablePointer<MYSQL_STMT>, column: Int, length: Int
    ) throws(DatabaseError) -> Data {
        var data = Data(count: length)
        var bind = MYSQL_BIND()
        var fetched: UInt = 0
        let rc = data.withUnsafeMutableBytes { raw -> Int32 in
            bind.buffer_type = MYSQL_TYPE_STRING
            bind.buffer = raw.baseAddress
            bind.buffer_length = UInt(length)
            return withUnsafeMutablePointer(to: &fetched) { fetchedPointer in
                bind.length = fetchedPointer
                return mysql_stmt_fetch_column(statement, &bind, UInt32(column), 0)
            }
        }
        guard rc == 0 else {
            throw DatabaseError(
                errorNumber: mysql_stmt_errno(statement), sqlState: String(cString: mysql_stmt_sqlstate(statement)),
                message: String(cString: mysql_stmt_error(statement)))
        }
        return data
    }
}

/// DATETIME(6) ↔ `Date`, always UTC.
enum MariaDBTime {
    static func time(from date: Date) -> MYSQL_TIME {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = micros.floorDivided(by: 1_000_000)
        let fraction = micros - seconds * 1_000_000
        let days = seconds.floorDivided(by: 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        var time = MYSQL_TIME()
        time.year = UInt32(clamping: year)
        time.month = UInt32(month)
        time.day = UInt32(day)
        time.hour = UInt32(secondOfDay / 3600)
        time.minute = UInt32(secondOfDay % 3600 / 60)
        time.second = UInt32(secondOfDay % 60)
        time.second_part = UInt(fraction)
        time.time_type = MYSQL_TIMESTAMP_DATETIME
        return time
    }

    /// nil for MariaDB's zero date.
    static func date(from time: MYSQL_TIME) -> Date? {
        guard time.year != 0 || time.month != 0 || time.day != 0 else { return nil }
        let days = daysFromCivil(year: Int64(time.year), month: Int64(time.month), day: Int64(time.day))
        let seconds = days * 86_400 + Int64(time.hour) * 3600 + Int64(time.minute) * 60 + Int64(time.second)
        let micros = seconds * 1_000_000 + Int64(time.second_part)
        return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    // Howard Hinnant's civil-calendar algorithms (proleptic Gregorian).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDivided(by: 400)
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
