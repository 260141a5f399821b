/// The `id` of an `EventSource` stream's events: the stream's positions in its channels, which the
/// browser sends back as `Last-Event-ID` when it reconnects, so the new stream recovers what the
/// old one missed.

/// `channel/offset/epoch` for each subscription that keeps its position, ordered by channel and
/// joined by `,` (the channel and the epoch percent-encoded: every byte but letters, digits and
/// `-_.:~#`). A browser keeps the last `id` it saw until another replaces it, so only events that
/// move a position carry one: the connect push and publications. An id that does not decode, or
/// that names more than `maxEntries` channels, is ignored, and the stream starts from now, as it
/// would without one.
enum EventStreamID {
    struct Position: Equatable, Sendable {
        var offset: UInt64
        var epoch: String
    }

    static let maxEntries = 64
    /// Longer `Last-Event-ID` values are not read.
    static let maxLength = 8192

    /// An id as a stream writes it. Made for every publication a stream is sent, so the usual
    /// stream's (one channel, named and epoch-ed in plain bytes) is its parts, the subscription's
    /// own strings and the offset, written out where the event is framed: no string is made for it.
    enum Value: Equatable, Sendable {
        case one(channel: String, offset: UInt64, epoch: String)
        case text(String)

        /// Its length in bytes.
        var count: Int {
            switch self {
            case .one(let channel, let offset, let epoch): channel.utf8.count + EventStreamID.digits(offset) + epoch.utf8.count + 2
            case .text(let text): text.utf8.count
            }
        }

        /// Writes it at the start of `buffer`, which holds at least `count` bytes; the bytes written.
        func write(to buffer: UnsafeMutableRawBufferPointer) -> Int {
            var index = 0
            func put(_ text: String) {
                var text = text
                index += text.withUTF8 { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[index..<index + bytes.count]).copyMemory(from: UnsafeRawBufferPointer(bytes))
                    return bytes.count
                }
            }
            switch self {
            case .one(let channel, let offset, let epoch):
                put(channel)
                buffer[index] = UInt8(ascii: "/")
                index += 1
                let digits = EventStreamID.digits(offset)
                var rest = offset
                for position in stride(from: index + digits - 1, through: index, by: -1) {
                    buffer[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                index += digits
                buffer[index] = UInt8(ascii: "/")
                index += 1
                put(epoch)
            case .text(let text):
                put(text)
            }
            return index
        }

        /// The id's text.
        var text: String {
            switch self {
            case .one(let channel, let offset, let epoch): "\(channel)/\(offset)/\(epoch)"
            case .text(let text): text
            }
        }
    }

    /// The id for `subscriptions`; nil when none of them keeps its position.
    static func make(_ subscriptions: [String: ConnectionState.Subscription]) -> Value? {
        if subscriptions.count == 1, let (channel, subscription) = subscriptions.first {
            guard subscription.tracksPosition else { return nil }
            if channel.utf8.allSatisfy(isPlain), subscription.epoch.utf8.allSatisfy(isPlain) {
                return .one(channel: channel, offset: subscription.offset, epoch: subscription.epoch)
            }
        }
        return encode(subscriptions).map(Value.text)
    }

    /// Decimal digits of `value`.
    static func digits(_ value: UInt64) -> Int {
        var count = 1
        var rest = value / 10
        while rest > 0 {
            count += 1
            rest /= 10
        }
        return count
    }

    /// The id's text for `subscriptions`; nil when none of them keeps its position.
    static func encode(_ subscriptions: [String: ConnectionState.Subscription]) -> String? {
        var id = ""
        let channels = subscriptions.compactMap { $0.value.tracksPosition ? $0.key : nil }.sorted()
        guard !channels.isEmpty else { return nil }
        for channel in channels {
            if !id.isEmpty { id.append(",") }
            append(channel, subscriptions[channel]!, to: &id)
        }
        return id
    }

    private static func append(_ channel: String, _ subscription: ConnectionState.Subscription, to id: inout String) {
        id.reserveCapacity(id.utf8.count + channel.utf8.count + subscription.epoch.utf8.count + 22)
        appendEscaped(channel, to: &id)
        id.append("/")
        id.append(String(subscription.offset))
        id.append("/")
        appendEscaped(subscription.epoch, to: &id)
    }

    /// The positions in a `Last-Event-ID`; nil when it is not one of ours.
    static func decode(_ text: Substring) -> [String: Position]? {
        guard !text.isEmpty, text.utf8.count <= maxLength else { return nil }
        var positions: [String: Position] = [:]
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let fields = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard fields.count == 3, let channel = unescaped(fields[0]), !channel.isEmpty, let offset = UInt64(fields[1]),
                let epoch = unescaped(fields[2]), positions[channel] == nil
            else { return nil }
            positions[channel] = Position(offset: offset, epoch: epoch)
            guard positions.count <= maxEntries else { return nil }
        }
        return positions
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "~"), UInt8(ascii: "#"):
            true
        default:
            false
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func appendEscaped(_ text: String, to id: inout String) {
        if text.utf8.allSatisfy(isPlain) {
            id.append(text)
            return
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count * 3)
        for byte in text.utf8 {
            if isPlain(byte) {
                bytes.append(byte)
            } else {
                bytes += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
            }
        }
        id.append(String(decoding: bytes, as: UTF8.self))
    }

    /// `text` percent-decoded; nil for a bad escape, a byte that should have been escaped, or
    /// bytes that are not UTF-8.
    private static func unescaped(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(UniWebSocket.hexValue), let low = iterator.next().flatMap(UniWebSocket.hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else {
                guard isPlain(byte) else { return nil }
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
