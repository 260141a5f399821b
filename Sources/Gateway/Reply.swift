/// Encoding of server → client messages: replies, error replies and pushes (including a publication
/// relayed from another node without re-encoding it).
import NIOCore
import SwitchboardCore

/// Encodes one server → client message: a reply to command `id`, or a push when `id` is 0.
enum Reply {
    static func result(id: UInt32, method: String, capacity: Int = 96, body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter(capacity: capacity)
        writer.beginObject()
        writer.field("id", id)
        writer.key(method)
        writer.beginObject()
        body(&writer)
        writer.endObject()
        writer.endObject()
        return writer.output
    }

    static func error(id: UInt32, _ error: GatewayError) -> String {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.field("id", id)
        writer.key("error")
        error.write(to: &writer)
        writer.endObject()
        return writer.output
    }

    static func push(channel: String, kind: String, body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.key("push")
        writer.beginObject()
        writer.field("channel", channel)
        writer.key(kind)
        body(&writer)
        writer.endObject()
        writer.endObject()
        return writer.output
    }

    static func publication(channel: String, _ publication: Publication) -> String {
        push(channel: channel, kind: "pub") { publication.write(to: &$0) }
    }

    /// The `pub` push around a publication's JSON as `Publication.json` wrote it (an object
    /// without `offset`), adding the offset as its last member; nil when the text is not an object.
    static func encodedPublication<JSON: BidirectionalCollection<UInt8>>(
        channel: String, offset: UInt64, json: JSON
    ) -> OutboundMessage? {
        guard json.count >= 2, json.first == UInt8(ascii: "{"), json.last == UInt8(ascii: "}") else { return nil }
        let head = #"{"push":{"channel":"#
        let pub = #","pub":"#
        var buffer = ByteBufferAllocator().buffer(capacity: head.utf8.count + channel.utf8.count + pub.utf8.count + json.count + 40)
        buffer.writeString(head)
        if JSONWriter.needsNoEscaping(channel) {
            buffer.writeInteger(UInt8(ascii: "\""))
            buffer.writeString(channel)
            buffer.writeInteger(UInt8(ascii: "\""))
        } else {
            var quoted = ""
            JSONWriter.appendQuoted(channel, to: &quoted)
            buffer.writeString(quoted)
        }
        buffer.writeString(pub)
        if offset > 0 {
            buffer.writeBytes(json.dropLast())
            // An empty object takes the offset as its only member.
            if json.count > 2 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeString(#""offset":"#)
            buffer.writeString(String(offset))
            buffer.writeInteger(UInt8(ascii: "}"))
        } else {
            buffer.writeBytes(json)
        }
        buffer.writeString("}}")
        return OutboundMessage(sharedPayload: buffer)
    }

    static let ping = "{}"
}
