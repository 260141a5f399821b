/// TurnStreamConnections owns how the api's public listener takes its HTTP/1 connections: the
/// first request of each connection is looked at on the event loop. A turn stream GET
/// (`/api/v1/messages/{id}/events`, the widget's `…/messages/{id}/events`) is answered by the
/// router like any request (every middleware, the API key or web session, ownership,
/// `Last-Event-ID` validation, the JSON error shape) and, when its route hands the stream over
/// (`TurnStreamHandoff`), the stream is served from then on by `TurnStreamConnectionHandler`, fed
/// by the node's `TurnStreamHub` in push mode: no task, no async channel and no Hummingbird
/// connection task per open stream, only the channel, its handlers and the hub's viewer. Every
/// other connection is handed to Hummingbird's HTTP/1 handling unchanged. Such a stream's
/// connection closes when the stream ends (`Connection: close`).
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import Turns

enum TurnStreamConnections {
    /// The api's HTTP/1 server: Hummingbird's, with turn stream connections taken by the handler.
    static func server(opener: TurnStreamOpener) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            TurnStreamChildChannel(http1: HTTP1Channel(responder: responder), opener: opener)
        }
    }

    /// True for the paths of the turn stream routes (the router checks the rest).
    static func isTurnStream(_ path: String?) -> Bool {
        guard var path else { return false }
        if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 6, parts[0].isEmpty, parts[1] == "api", parts[2] == "v1", parts.last == "events" else { return false }
        switch parts.count {
        case 6: return parts[3] == "messages" && !parts[4].isEmpty
        case 10: return parts[3] == "widget" && parts[5] == "sessions" && parts[7] == "messages" && !parts[8].isEmpty
        default: return false
        }
    }
}

/// The connections of one listener that are turn streams served by the handlers. They have no
/// task for a cancellation to reach: when the application is cancelled (not shut down
/// gracefully, where the server's quiesce ends them), `TurnStreamClosing` closes them.
final class TurnStreamChannels: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any NIOCore.Channel]>([:])

    func add(_ channel: any NIOCore.Channel) { channels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func remove(_ channel: any NIOCore.Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    var count: Int { channels.withLock { $0.count } }

    func closeAll() {
        let open = channels.withLock { channels in
            defer { channels = [:] }
            return Array(channels.values)
        }
        for channel in open { channel.close(promise: nil) }
    }
}

/// Closes the open turn streams of a listener when its application is cancelled; returns at a
/// graceful shutdown (the server ends them itself then).
struct TurnStreamClosing: Service {
    let channels: TurnStreamChannels

    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled.
        }
        channels.closeAll()
    }
}

/// Where a turn stream route leaves its stream for the channel handler (one per request that
/// came through it).
final class TurnStreamHandoff: Sendable {
    struct Stream: Sendable {
        let relay: TurnEventRelay
        let messageID: Int64
        let status: MessageStatus
        let after: String?
        let logger: Logger
    }

    private let stream = Mutex<Stream?>(nil)

    func hand(_ stream: Stream) { self.stream.withLock { $0 = stream } }

    func take() -> Stream? {
        stream.withLock { stream in
            defer { stream = nil }
            return stream
        }
    }
}

/// A connection of the api's listener: set up like Hummingbird's `HTTP1Channel`, with
/// `HTTPParseErrorHandler` after the HTTP codec and the turn stream handler before Hummingbird's
/// connection state handler. `handle`
/// (Hummingbird's task for the connection) waits only for the first request's head: for a turn
/// stream it returns at once; for anything else it wraps the channel and runs Hummingbird's
/// request loop.
struct TurnStreamChildChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any NIOCore.Channel
        /// True when the connection goes to Hummingbird; false when the handler took it (or it
        /// closed before a request).
        let toHummingbird: EventLoopFuture<Bool>
        let handler: NIOLoopBound<TurnStreamConnectionHandler>
    }

    let http1: HTTP1Channel
    let opener: TurnStreamOpener

    func setup(channel: any NIOCore.Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decoder = http1.configuration.httpDecoder
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = decoder.maxHeaderFieldSize
            limits.maxHeaderListSize = decoder.maxHeaderListSize
            limits.maxHeaderFieldCount = decoder.maxHeaderFieldCount
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPParseErrorHandler())
            try channel.pipeline.syncOperations.addHandlers(http1.configuration.additionalChannelHandlers())
            let decided = channel.eventLoop.makePromise(of: Bool.self)
            let handler = TurnStreamConnectionHandler(opener: opener, decided: decided)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.pipeline.syncOperations.addHandler(
                HTTPConnectionStateHandler(idleTimeout: http1.configuration.idleTimeout.map { .init($0) }, logger: logger))
            return Value(channel: channel, toHummingbird: decided.futureResult, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
    }

    func handle(value: Value, logger: Logger) async {
        guard (try? await value.toHummingbird.get()) == true else { return }
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>?
        do {
            asyncChannel = try await value.channel.eventLoop.submit { () throws -> NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>? in
                // Closed meanwhile: nothing to answer.
                guard value.channel.isActive else { return nil }
                let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                    wrappingChannelSynchronously: value.channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                value.handler.value.release()
                return asyncChannel
            }.get()
        } catch {
            logger.debug("could not take the connection", metadata: ["error": "\(error)"])
            value.channel.close(promise: nil)
            return
        }
        guard let asyncChannel else { return }
        await http1.handle(value: asyncChannel, logger: logger)
    }
}

/// Answers a turn stream request through the router, on a short task, and says how the
/// connection goes on (one per listener, shared by its connections).
final class TurnStreamOpener: Sendable {
    let responder: RouterResponder<APIRequestContext>
    let logger: Logger
    let serverName: String?
    /// The open streams of the listener.
    let channels = TurnStreamChannels()

    init(responder: RouterResponder<APIRequestContext>, logger: Logger, serverName: String?) {
        self.responder = responder
        self.logger = logger
        self.serverName = serverName
    }

    /// The stream that goes on from the event loop after its first frames.
    struct Follow: Sendable {
        let subscription: TurnStreamSubscription
        let relay: TurnEventRelay
        let logger: Logger
    }

    enum Opened: Sendable {
        /// A whole answer (an error, 204, ...); the connection closes after it.
        case answer(HTTPResponse, ByteBuffer)
        /// The stream's head and first frames, and what follows them (nil: the stream ended).
        case stream(HTTPResponse, ByteBuffer, Follow?)
    }

    func open(_ head: HTTPRequest, channel: any NIOCore.Channel) async -> Opened {
        var logger = self.logger
        logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
        let handoff = TurnStreamHandoff()
        var requestContext = APIRequestContext(source: .init(channel: channel, logger: logger))
        requestContext.streamHandoff = handoff
        let context = requestContext
        let request = Request(head: head, body: RequestBody(buffer: ByteBuffer()))
        let responder = self.responder
        var response: Response
        do {
            // With the request's logger bound to the task, as Hummingbird answers a request.
            response = try await withLogger(logger) { _ in try await responder.respond(to: request, context: context) }
        } catch {
            response = JSONErrorMiddleware<APIRequestContext>.response(for: error, request: request, context: context)
        }
        // Written out here (empty for a handed-over stream), so that the middlewares' steps after
        // the body (metrics, the trace span) run.
        let collector = CollectingBodyWriter()
        do {
            try await response.body.write(collector)
        } catch {
            response = JSONErrorMiddleware<APIRequestContext>.response(for: error, request: request, context: context)
            collector.buffer = ByteBuffer()
            try? await response.body.write(collector)
        }
        guard response.status == .ok, let stream = handoff.take() else {
            return .answer(answerHead(response, length: collector.buffer.readableBytes), collector.buffer)
        }
        do {
            let opening = try await stream.relay.opening(messageID: stream.messageID, status: stream.status, after: stream.after)
            let follow = opening.subscription.map { Follow(subscription: $0, relay: stream.relay, logger: stream.logger) }
            return .stream(answerHead(response, length: nil), opening.frames, follow)
        } catch {
            let failure = JSONErrorMiddleware<APIRequestContext>.response(for: error, request: request, context: context)
            let body = CollectingBodyWriter()
            try? await failure.body.write(body)
            var failed = answerHead(failure, length: body.buffer.readableBytes)
            failed.headerFields[RequestIDMiddleware<APIRequestContext>.header] = response.headers[RequestIDMiddleware<APIRequestContext>.header]
            return .answer(failed, body.buffer)
        }
    }

    /// The response head as Hummingbird would write it, closing the connection after it.
    private func answerHead(_ response: Response, length: Int?) -> HTTPResponse {
        var head = response.head
        head.headerFields[.connection] = "close"
        head.headerFields[.date] = HTTPDate.now()
        if let serverName { head.headerFields[.server] = serverName }
        // A stream has no length (the response for it carries an empty body, whose length
        // Hummingbird would state); a 204 has no body and says no length.
        head.headerFields[.contentLength] = nil
        if let length, head.status != .noContent { head.headerFields[.contentLength] = "\(length)" }
        return head
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate).
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// One connection of the api's listener, on its event loop. Until the first request's head it
/// only watches; then either it holds what it read until Hummingbird's async channel is in place
/// (`release`) and passes everything through from then on, or it serves the turn stream: the
/// opener's short task answers the request, then the hub pushes the turn's entries here, written
/// as frames as they come. What it keeps per open stream: the subscription, the frames a slow
/// client has not taken yet, one scheduled heartbeat.
/// - Heartbeat: after `heartbeatInterval` (less a random fifth) without an event, the idle check
///   (deleted message, lost final event, batched per node by `MessageLookups`, a task only when
///   the turn may have ended); then `: heartbeat`.
/// - A client that does not read: frames wait here while the channel is not writable; past the
///   hub's `viewerBufferLimit` entries the stream is cut off (what was written stays whole), and
///   the client resumes with `Last-Event-ID`.
/// - The final event, a made-up end, a cut-off or the server's graceful shutdown (NIO's quiesce
///   event) end the chunked body cleanly and close the connection once it is flushed.
final class TurnStreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Mode {
        /// No request head yet.
        case undecided
        /// Going to Hummingbird: reads are held until its async channel is in place.
        case holding
        /// Hummingbird's connection.
        case passing
        /// A turn stream served here.
        case stream
    }

    private enum Phase {
        case opening, streaming, ending, closed
    }

    private enum Held {
        case part(HTTPRequestPart)
        case error(any Error)
        case event(Any)
    }

    private let opener: TurnStreamOpener
    private let decided: EventLoopPromise<Bool>
    private var mode = Mode.undecided
    private var hasDecided = false
    private var held: [Held] = []
    private var readPending = false
    private var context: ChannelHandlerContext?

    private var phase = Phase.opening
    private var quiescing = false
    private var follow: TurnStreamOpener.Follow?
    private var subscription: TurnStreamSubscription?
    /// Frames not written yet because the client is not reading fast enough, and their entries.
    private var pending: ByteBuffer?
    private var pendingEntries = 0
    private var lastActivity = NIODeadline.now()
    /// This stream's current heartbeat interval (`heartbeatInterval` less up to a fifth, drawn
    /// anew after each heartbeat; see `TurnEventRelay.heartbeat(after:)`).
    private var interval = TimeAmount.seconds(15)
    private var timer: Scheduled<Void>?

    init(opener: TurnStreamOpener, decided: EventLoopPromise<Bool>) {
        self.opener = opener
        self.decided = decided
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        decide(toHummingbird: false)
        teardown()
        self.context = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch mode {
        case .passing:
            context.fireChannelRead(data)
        case .holding:
            held.append(.part(unwrapInboundIn(data)))
        case .stream:
            break  // the request's end, or anything a client sends after it: not read
        case .undecided:
            let part = unwrapInboundIn(data)
            if case .head(let head) = part, head.method == .get, TurnStreamConnections.isTurnStream(head.path) {
                mode = .stream
                decide(toHummingbird: false)
                slim(context)
                open(head, context: context)
            } else {
                mode = .holding
                held.append(.part(part))
                decide(toHummingbird: true)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if mode == .passing || mode == .undecided { context.fireChannelReadComplete() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch mode {
        case .undecided:
            // A malformed request: Hummingbird answers it (400) as always.
            mode = .holding
            held.append(.error(error))
            decide(toHummingbird: true)
        case .holding:
            held.append(.error(error))
        case .passing:
            context.fireErrorCaught(error)
        case .stream:
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch mode {
        case .undecided:
            if let event = event as? ChannelEvent, case .inputClosed = event {
                // The client left before asking anything.
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
        case .passing:
            context.fireUserInboundEventTriggered(event)
        case .holding:
            held.append(.event(event))
        case .stream:
            if event is ChannelShouldQuiesceEvent {
                // The server is shutting down: end the stream cleanly; the client reconnects
                // (to another node) with Last-Event-ID.
                quiescing = true
                if phase == .streaming { end(grace: .seconds(2)) }
            } else if let event = event as? ChannelEvent, case .inputClosed = event {
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        decide(toHummingbird: false)
        if mode == .stream {
            teardown()
            opener.channels.remove(context.channel)
        }
        phase = .closed
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if mode == .stream, phase == .streaming, context.channel.isWritable, let frames = pending {
            pending = nil
            pendingEntries = 0
            context.writeAndFlush(wrapOutboundOut(.body(frames)), promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: outbound

    func read(context: ChannelHandlerContext) {
        if mode == .holding {
            readPending = true
        } else {
            context.read()
        }
    }

    // MARK: Hummingbird's connections

    private func decide(toHummingbird: Bool) {
        guard !hasDecided else { return }
        hasDecided = true
        decided.succeed(toHummingbird)
    }

    /// Hummingbird's async channel is in place: what was held goes to it, and everything after.
    func release() {
        guard mode == .holding, let context else { return }
        mode = .passing
        let items = held
        held = []
        for item in items {
            switch item {
            case .part(let part): context.fireChannelRead(wrapInboundOut(part))
            case .error(let error): context.fireErrorCaught(error)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            }
        }
        context.fireChannelReadComplete()
        if readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: turn streams

    /// A turn stream reads no other request: what the connection keeps for requests goes (the
    /// HTTP request decoder and Hummingbird's connection state), and anything the client sends
    /// after the request is dropped unread. Only the response side stays.
    private func slim(_ context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        do {
            try pipeline.addHandler(DiscardingReads(), position: .first)
            pipeline.removeHandler(context: try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
            pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPConnectionStateHandler.self), promise: nil)
        } catch {
            // Not found: the pipeline stays as it is, which serves the stream as well.
        }
    }

    private func open(_ head: HTTPRequest, context: ChannelHandlerContext) {
        let channel = context.channel
        opener.channels.add(channel)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let opener = self.opener
        Task {
            let opened = await opener.open(head, channel: channel)
            channel.eventLoop.execute { handler.value.opened(opened) }
        }
    }

    private func opened(_ opened: TurnStreamOpener.Opened) {
        guard phase == .opening, let context, context.channel.isActive else {
            if case .stream(_, _, let follow?) = opened { follow.subscription.cancel() }
            return
        }
        switch opened {
        case .answer(let head, let body):
            phase = .ending
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(body)), promise: nil) }
            closeWhenFlushed(context.writeAndFlush(wrapOutboundOut(.end(nil))), grace: .seconds(10))
        case .stream(let head, let frames, let follow):
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(frames)), promise: nil)
            guard let follow else {
                end(grace: drainGrace)
                return
            }
            guard !quiescing else {
                follow.subscription.cancel()
                end(grace: .seconds(2))
                return
            }
            phase = .streaming
            self.follow = follow
            subscription = follow.subscription
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let sink: @Sendable ([TurnStreamEntry]) -> Void = { entries in
                eventLoop.execute { handler.value.receive(entries) }
            }
            switch follow.subscription.attach(sink) {
            case .entries(let entries):
                receive(entries)
            case .cutOff:
                cutOff()
                return
            case .idle, .cancelled:
                break
            }
            guard phase == .streaming else { return }
            context.flush()
            lastActivity = .now()
            interval = heartbeat
            scheduleTick(at: lastActivity + interval)
        }
    }

    /// A freshly drawn heartbeat interval.
    private var heartbeat: TimeAmount {
        let (seconds, attoseconds) = TurnEventRelay.heartbeat(after: follow?.relay.api.settings.heartbeatInterval ?? .seconds(15)).components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// How long a stream that ended may take to reach a client that reads slowly before its
    /// connection is closed anyway.
    private var drainGrace: TimeAmount { max(heartbeat * 2, .seconds(30)) }

    /// Entries the hub read for this stream.
    private func receive(_ entries: [TurnStreamEntry]) {
        guard phase == .streaming, let context, var subscription else { return }
        let fresh = subscription.accept(entries)
        self.subscription = subscription
        guard !fresh.isEmpty else { return }
        lastActivity = .now()
        if pending != nil || !context.channel.isWritable {
            // The client is not keeping up: hold the frames here, up to the viewer's limit.
            var frames = pending ?? ByteBuffer()
            TurnEventRelay.append(fresh, to: &frames)
            pending = frames
            pendingEntries += fresh.count
            if pendingEntries > (follow?.relay.hub.settings.viewerBufferLimit ?? 1_024), !subscription.ended {
                cutOff()
                return
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.body(TurnEventRelay.frames(fresh))), promise: nil)
        }
        if subscription.ended { end(grace: drainGrace) }
    }

    /// Too far behind: end the response with what was written (whole frames); the client
    /// resumes with Last-Event-ID.
    private func cutOff() {
        follow?.logger.info("sse client fell behind; ending its stream so it resumes", metadata: ["cursor": "\(subscription?.cursor ?? "")"])
        pending = nil
        pendingEntries = 0
        end(grace: drainGrace)
    }

    /// Ends the body after what is pending and closes the connection once it is flushed (or after
    /// `grace`, for a client that does not read).
    private func end(grace: TimeAmount, with last: ByteBuffer? = nil) {
        guard phase == .streaming || phase == .opening, let context else { return }
        phase = .ending
        teardown()
        if var frames = pending {
            if var last { frames.writeBuffer(&last) }
            context.write(wrapOutboundOut(.body(frames)), promise: nil)
        } else if let last {
            context.write(wrapOutboundOut(.body(last)), promise: nil)
        }
        pending = nil
        closeWhenFlushed(context.writeAndFlush(wrapOutboundOut(.end(nil))), grace: grace)
    }

    private func closeWhenFlushed(_ written: EventLoopFuture<Void>, grace: TimeAmount) {
        guard let context else { return }
        let channel = context.channel
        let deadline = context.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
        written.whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    /// Leaves the hub and stops the heartbeat.
    private func teardown() {
        timer?.cancel()
        timer = nil
        subscription?.cancel()
        subscription = nil
    }

    private func scheduleTick(at deadline: NIODeadline) {
        guard let context else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) { handler.value.tick() }
    }

    /// The heartbeat: idle for a heartbeat, the idle check runs; `checked` writes the beat.
    private func tick() {
        timer = nil
        guard phase == .streaming, let context, let follow, let messageID = subscription?.messageID else { return }
        let due = lastActivity + interval
        if due > .now() {
            scheduleTick(at: due)
            return
        }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        follow.relay.idleEnding(messageID: messageID) { result in
            eventLoop.execute { handler.value.checked(result) }
        }
    }

    private func checked(_ result: Result<TurnEvent?, any Error>) {
        guard phase == .streaming, let context else { return }
        switch result {
        case .success(let end?):
            // A deleted message gets no answer; a finished one whose final event never came
            // (lost with its stream) is answered from the database.
            follow?.logger.warning("turn stream ended without its final event; answering from the database")
            var frame = ByteBuffer()
            do {
                try TurnEventRelay.appendSynthesizedEnd(end, to: &frame)
            } catch {
                self.end(grace: drainGrace)
                return
            }
            self.end(grace: drainGrace, with: frame)
        case .success(nil):
            if var frames = pending {
                frames.writeImmutableBuffer(TurnEventRelay.heartbeatFrame)
                pending = frames
            } else {
                context.writeAndFlush(wrapOutboundOut(.body(TurnEventRelay.heartbeatFrame)), promise: nil)
            }
            lastActivity = .now()
            interval = heartbeat
            scheduleTick(at: lastActivity + interval)
        case .failure(let error):
            // As a streaming body that throws: the response ends; the client reconnects.
            follow?.logger.warning("turn stream idle check failed; ending the stream", metadata: ["error": "\(error)"])
            end(grace: drainGrace)
        }
    }
}

/// Drops what a turn stream's client sends after its request (the stream reads nothing more);
/// the connection's end still comes through.
final class DiscardingReads: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func channelReadComplete(context: ChannelHandlerContext) {}
}
