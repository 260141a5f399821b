import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Storage
import SwitchboardCore
import Turns

/// Server-sent events relaying a turn stream. Every frame carries the Redis entry id as `id:`, so
/// a client reconnecting with `Last-Event-ID` continues right after the last event it saw; any
/// api node can serve any stream because the events live in Redis. The node's `TurnStreamHub`
/// reads them for all its open streams over a fixed number of Redis connections.
struct TurnEventRelay: Sendable {
    let api: PublicAPI
    let hub: TurnStreamHub

    static let lastEventIDHeader = HTTPField.Name("Last-Event-ID")!
    static let messageIDHeader = HTTPField.Name("X-Message-ID")!
    static let chatIDHeader = HTTPField.Name("X-Chat-ID")!

    static var streamHeaders: HTTPFields {
        [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-cache",
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
    }

    /// GET /messages/{id}/events
    func events(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (messageID, status) = try await streamedMessage(context)
        let lastEventID = try Self.lastEventID(request)
        let reader = TurnStreamReader(redis: api.dependencies.redis)
        if let lastEventID, let tail = try await reader.last(messageID: messageID), tail.isFinal, tail.id == lastEventID {
            // The client saw the end already: 204 tells an EventSource to stop reconnecting.
            return Response(status: .noContent)
        }
        return Response(
            status: .ok, headers: Self.streamHeaders,
            body: body(messageID: messageID, status: status, after: lastEventID, logger: context.logger))
    }

    /// The caller's message whose stream is asked for, and its status as far as the stream needs
    /// it. One this node accepted from the caller within the last minute needs no database read:
    /// its stream is young (streams live an hour), so it is read like a queued one's.
    private func streamedMessage(_ context: APIRequestContext) async throws -> (id: Int64, status: MessageStatus) {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "messageId", what: "message")
        if api.recentSubmissions.owner(of: id) == caller.user.id { return (id, .queued) }
        let message = try await api.ownedMessage(context)
        return (message.id, message.status)
    }

    /// POST /messages/stream: submit, then stream the turn in the same response. With an
    /// Idempotency-Key a retry streams the turn the first request created.
    func submitAndStream(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        // Read first, so a malformed one is refused whether or not this turns out to be a replay.
        let lastEventID = try Self.lastEventID(request)
        var request = request
        let buffer = try await APIJSON.collect(&request, maxBytes: api.settings.maxBodyBytes)
        let key = try IdempotencyStore.key(of: request)
        let fingerprint = IdempotencyStore.fingerprint(method: request.method, path: request.uri.path, body: buffer)
        let store = api.idempotency

        if let key {
            let verdict = try await store.begin(userID: caller.user.id, key: key, fingerprint: fingerprint)
            if let error = IdempotencyStore.conflictError(verdict) { throw error }
            if case .replay(let status, let stored) = verdict {
                guard status == 202, let accepted = try? JSONDecoder().decode(AcceptedJSON.self, from: Data(stored)),
                      let message = try await api.stores.messages.message(id: accepted.messageId, ownerID: caller.user.id)
                else { return IdempotencyStore.replayResponse(status: status, body: stored) }
                var headers = Self.streamHeaders
                headers[Self.messageIDHeader] = "\(message.id)"
                headers[Self.chatIDHeader] = "\(message.chatID)"
                headers[IdempotencyStore.replayedHeader] = "true"
                return Response(
                    status: .ok, headers: headers,
                    body: body(messageID: message.id, status: message.status, after: lastEventID, logger: context.logger))
            }
        }

        let accepted: AcceptedJSON
        do {
            let body = try await APIJSON.decode(SubmitMessageBody.self, from: &request, maxBytes: api.settings.maxBodyBytes)
            accepted = try await api.submit(
                caller: caller, content: body.content, chatID: body.chatId, title: body.title, idempotencyKey: key, logger: context.logger)
        } catch {
            if let key {
                let response = JSONErrorMiddleware<APIRequestContext>.response(for: error, request: request, context: context)
                if response.status.code >= 500 {
                    await store.abandon(userID: caller.user.id, key: key, fingerprint: fingerprint)
                } else {
                    let collector = CollectingBodyWriter()
                    try await response.body.write(collector)
                    try await store.complete(
                        userID: caller.user.id, key: key, fingerprint: fingerprint, status: Int(response.status.code),
                        body: Array(collector.buffer.readableBytesView))
                    return Response(status: response.status, headers: response.headers, body: .init(byteBuffer: collector.buffer))
                }
            }
            throw error
        }
        if let key {
            try await store.complete(
                userID: caller.user.id, key: key, fingerprint: fingerprint, status: 202, body: Array(try APIJSON.encoder.encode(accepted)))
        }
        var headers = Self.streamHeaders
        headers[Self.messageIDHeader] = "\(accepted.messageId)"
        headers[Self.chatIDHeader] = "\(accepted.chatId)"
        headers[.location] = accepted.events
        // Just stored as `queued`: no need to read it back.
        return Response(
            status: .ok, headers: headers, body: body(messageID: accepted.messageId, status: .queued, after: nil, logger: context.logger))
    }

    static func lastEventID(_ request: Request) throws -> String? {
        // An empty header is no resume point: it does not hide the query parameter (a page that
        // resumes after a reload sends the query; its EventSource may send the header empty).
        let header = request.headers[lastEventIDHeader].flatMap { $0.isEmpty ? nil : $0 }
        let value = header ?? request.uri.queryParameters["lastEventId"].map(String.init)
        guard let value, !value.isEmpty else { return nil }
        guard TurnStreamReader.isValidEntryID(value) else {
            throw SwitchboardError.invalidField("Last-Event-ID", "is not an event id of this stream")
        }
        return value
    }

    /// The body of `messageID`'s stream, whose message had `initialStatus` when the request came:
    /// frames from the stream after `after`, a heartbeat comment whenever it is idle, finished
    /// after the final event.
    func body(messageID: Int64, status initialStatus: MessageStatus, after: String?, logger: Logger) -> ResponseBody {
        let reader = TurnStreamReader(redis: api.dependencies.redis)
        let messages = api.stores.messages
        let heartbeat = api.settings.heartbeatInterval
        let hub = self.hub
        let lookups = hub.lookups
        return ResponseBody { writer in
            let cursor = after ?? "0-0"
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            // A turn that ended long ago may have no stream left: answer its end from the database.
            if initialStatus.isFinal, try await reader.last(messageID: messageID) == nil {
                try await Self.writeSynthesizedEnd(try await StoredTurnEnding.event(messageID: messageID, messages: messages), writer: &writer)
                try await writer.finish(nil)
                return
            }
            // From here the hub reads the stream for this response (and every other viewer of
            // the turn on this node).
            var subscription = TurnStreamSubscription(hub: hub, reader: reader, messageID: messageID, after: cursor)
            defer { subscription.cancel() }
            while !subscription.ended {
                switch try await subscription.next(timeout: heartbeat) {
                case .entries(let entries):
                    try await Self.write(entries, to: &writer)
                case .idle:
                    // A deleted message gets no answer; a finished one whose final event never
                    // came (lost with its stream) is answered from the database.
                    if let end = try await StoredTurnEnding.lostEnding(messageID: messageID, messages: messages, lookups: lookups, reader: reader) {
                        logger.warning("turn stream ended without its final event; answering from the database")
                        try await Self.writeSynthesizedEnd(end, writer: &writer)
                        try await writer.finish(nil)
                        return
                    }
                    try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                case .cutOff:
                    // Too far behind: end the response; the client resumes with Last-Event-ID.
                    logger.info("sse client fell behind; ending its stream so it resumes", metadata: ["cursor": "\(subscription.cursor)"])
                    try await writer.finish(nil)
                    return
                case .cancelled:
                    throw CancellationError()
                }
            }
            try await writer.finish(nil)
        }
    }

    /// Writes `entries` as frames.
    static func write(_ entries: [TurnStreamEntry], to writer: inout any ResponseBodyWriter) async throws {
        guard !entries.isEmpty else { return }
        var frames = ByteBuffer()
        for entry in entries {
            appendFrame(id: entry.id, type: entry.type, data: entry.data, to: &frames)
        }
        try await writer.write(frames)
    }

    /// Writes a final event made up from the database (no `id:`: it is not a stream entry).
    static func writeSynthesizedEnd(_ event: TurnEvent, writer: inout any ResponseBodyWriter) async throws {
        var frame = ByteBuffer()
        appendFrame(id: nil, type: event.type, data: try event.encodedData(), to: &frame)
        try await writer.write(frame)
    }

    static func appendFrame(id: String?, type: String, data: [UInt8], to buffer: inout ByteBuffer) {
        if let id { buffer.writeString("id: \(id)\n") }
        buffer.writeString("event: \(type)\n")
        // `data:` must not contain a raw newline; split it into several data lines if it does.
        var line: [UInt8] = []
        for byte in data {
            if byte == UInt8(ascii: "\n") {
                buffer.writeString("data: ")
                buffer.writeBytes(line)
                buffer.writeString("\n")
                line.removeAll(keepingCapacity: true)
            } else if byte != UInt8(ascii: "\r") {
                line.append(byte)
            }
        }
        buffer.writeString("data: ")
        buffer.writeBytes(line)
        buffer.writeString("\n\n")
    }
}
