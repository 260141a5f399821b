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
final class TurnEventRelay: Sendable {
    let api: PublicAPI
    let hub: TurnStreamHub

    init(api: PublicAPI, hub: TurnStreamHub) {
        self.api = api
        self.hub = hub
    }

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
        return streamResponse(messageID: messageID, status: status, after: lastEventID, headers: Self.streamHeaders, context: context)
    }

    /// The 200 answer streaming `messageID`'s turn. On a connection whose request came through the
    /// turn stream channel handlers (`TurnStreamConnections`, `context.streamHandoff` set), the
    /// stream is handed to them and the response has no body of its own: they serve it from the
    /// event loop with no task while it waits. Elsewhere the body streams it from a task.
    func streamResponse(messageID: Int64, status: MessageStatus, after: String?, headers: HTTPFields, context: APIRequestContext) -> Response {
        if let handoff = context.streamHandoff {
            handoff.hand(.init(relay: self, messageID: messageID, status: status, after: after, logger: context.logger))
            return Response(status: .ok, headers: headers, body: .init())
        }
        return Response(status: .ok, headers: headers, body: body(messageID: messageID, status: status, after: after, logger: context.logger))
    }

    /// How a stream starts: `retry: 2000`, then either a made-up end (a turn that ended long ago
    /// has no stream left: its end comes from the database) and no subscription, or the frames of
    /// what the hub had read before this viewer came and the subscription following the rest.
    struct Opening: Sendable {
        var frames: ByteBuffer
        var subscription: TurnStreamSubscription?
    }

    func opening(messageID: Int64, status initialStatus: MessageStatus, after: String?) async throws -> Opening {
        let reader = TurnStreamReader(redis: api.dependencies.redis)
        var frames = ByteBuffer(string: "retry: 2000\n\n")
        if initialStatus.isFinal, try await reader.last(messageID: messageID) == nil {
            try Self.appendSynthesizedEnd(try await StoredTurnEnding.event(messageID: messageID, messages: api.stores.messages), to: &frames)
            return Opening(frames: frames, subscription: nil)
        }
        // From here the hub reads the stream for this viewer (and every other viewer of the turn
        // on this node).
        var subscription = TurnStreamSubscription(hub: hub, reader: reader, messageID: messageID, after: after ?? "0-0")
        do {
            Self.append(try await subscription.catchUp(), to: &frames)
        } catch {
            subscription.cancel()
            throw error
        }
        if subscription.ended {
            subscription.cancel()
            return Opening(frames: frames, subscription: nil)
        }
        return Opening(frames: frames, subscription: subscription)
    }

    /// What an idle stream (no event for a heartbeat) should end with: nil while the turn goes
    /// on; a made-up final event when its message was deleted or its final event was lost.
    func idleEnding(messageID: Int64) async throws -> TurnEvent? {
        try await StoredTurnEnding.lostEnding(
            messageID: messageID, messages: api.stores.messages, lookups: hub.lookups, reader: TurnStreamReader(redis: api.dependencies.redis))
    }

    /// The same, answered to `answer`: with the node's batched lookups, a turn that goes on (the
    /// usual answer) is answered without a task; only one that may have ended starts one.
    func idleEnding(messageID: Int64, answer: @escaping @Sendable (Result<TurnEvent?, any Error>) -> Void) {
        let messages = api.stores.messages
        let reader = TurnStreamReader(redis: api.dependencies.redis)
        @Sendable func answering(_ ending: @escaping @Sendable () async throws -> TurnEvent?) {
            Task {
                do {
                    answer(.success(try await ending()))
                } catch {
                    answer(.failure(error))
                }
            }
        }
        guard let lookups = hub.lookups else {
            answering { try await StoredTurnEnding.lostEnding(messageID: messageID, messages: messages, lookups: nil, reader: reader) }
            return
        }
        lookups.message(id: messageID) { found in
            switch found {
            case .failure(let error):
                answer(.failure(error))
            case .success(let current) where !StoredTurnEnding.mayHaveEnded(current):
                answer(.success(nil))
            case .success(let current):
                answering { try await StoredTurnEnding.lostEnding(of: current, messageID: messageID, messages: messages, reader: reader) }
            }
        }
    }

    static let heartbeatFrame = ByteBuffer(string: ": heartbeat\n\n")

    /// How long an idle stream waits for its next heartbeat: `interval` less a random part of up
    /// to a fifth, drawn for every heartbeat. Streams opened together (a reconnect storm after a
    /// deploy, a batch of tabs) would otherwise beat together every interval for as long as they
    /// stay open, each beat a burst of writes and idle checks that delays the events of every
    /// other stream; drawn anew each time, their beats spread out within a few intervals. No
    /// gap between two heartbeats is longer than `interval`, which proxies' idle timeouts rely on.
    static func heartbeat(after interval: Duration) -> Duration {
        interval - interval * Double.random(in: 0..<0.2)
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
                caller: caller, content: body.content, chatID: body.chatId, title: body.title, fileIDs: body.fileIds ?? [],
                idempotencyKey: key, logger: context.logger)
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
        // Both are checked when both come: a malformed one is refused even where the other wins.
        let header = request.headers[lastEventIDHeader].flatMap { $0.isEmpty ? nil : $0 }
        let query = request.uri.queryParameters["lastEventId"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        if let query, !TurnStreamReader.isValidEntryID(query) {
            throw SwitchboardError.invalidField("lastEventId", "is not an event id of this stream")
        }
        guard let value = header ?? query else { return nil }
        guard TurnStreamReader.isValidEntryID(value) else {
            throw SwitchboardError.invalidField("Last-Event-ID", "is not an event id of this stream")
        }
        return value
    }

    /// The body of `messageID`'s stream, whose message had `initialStatus` when the request came,
    /// served from a task: frames from the stream after `after`, a heartbeat comment whenever it
    /// is idle, finished after the final event.
    func body(messageID: Int64, status initialStatus: MessageStatus, after: String?, logger: Logger) -> ResponseBody {
        let heartbeat = api.settings.heartbeatInterval
        let relay = self
        return ResponseBody { writer in
            let opening = try await relay.opening(messageID: messageID, status: initialStatus, after: after)
            try await writer.write(opening.frames)
            guard var subscription = opening.subscription else {
                try await writer.finish(nil)
                return
            }
            defer { subscription.cancel() }
            while !subscription.ended {
                switch try await subscription.next(timeout: Self.heartbeat(after: heartbeat)) {
                case .entries(let entries):
                    if !entries.isEmpty { try await writer.write(Self.frames(entries)) }
                case .idle:
                    // A deleted message gets no answer; a finished one whose final event never
                    // came (lost with its stream) is answered from the database.
                    if let end = try await relay.idleEnding(messageID: messageID) {
                        logger.warning("turn stream ended without its final event; answering from the database")
                        var frame = ByteBuffer()
                        try Self.appendSynthesizedEnd(end, to: &frame)
                        try await writer.write(frame)
                        try await writer.finish(nil)
                        return
                    }
                    try await writer.write(Self.heartbeatFrame)
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

    /// `entries` as frames.
    static func frames(_ entries: [TurnStreamEntry]) -> ByteBuffer {
        var frames = ByteBuffer()
        append(entries, to: &frames)
        return frames
    }

    static func append(_ entries: [TurnStreamEntry], to frames: inout ByteBuffer) {
        for entry in entries {
            appendFrame(id: entry.id, type: entry.type, data: entry.data, to: &frames)
        }
    }

    /// Appends a final event made up from the database (no `id:`: it is not a stream entry).
    static func appendSynthesizedEnd(_ event: TurnEvent, to buffer: inout ByteBuffer) throws {
        appendFrame(id: nil, type: event.type, data: try event.encodedData(), to: &buffer)
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
