import CHiredis
import NIOCore

/// Parses RESP replies with hiredis's reader (`redisReaderFeed` / `redisReaderGetReply`) and
/// converts each `redisReply` tree to a `RESPValue`. Used only on one event loop.
final class HiredisReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis: out of memory creating a reader") }
        self.reader = reader
    }

    deinit { redisReaderFree(reader) }

    /// True while the reader holds the start of a reply it has not finished.
    var holdsPartialReply: Bool {
        reader.pointee.pos < reader.pointee.len || reader.pointee.ridx >= 0
    }

    func feed(_ buffer: ByteBuffer) throws(RedisError) {
        let status = buffer.withUnsafeReadableBytes { raw -> Int32 in
            guard let base = raw.baseAddress, raw.count > 0 else { return REDIS_OK }
            return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        if status != REDIS_OK { throw RedisError.protocolError(errorString) }
    }

    /// The next complete reply, or nil when more bytes are needed.
    func next() throws(RedisError) -> RESPValue? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK { throw RedisError.protocolError(errorString) }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    private var errorString: String {
        withUnsafeBytes(of: reader.pointee.errstr) { bytes in
            let text = bytes.prefix { $0 != 0 }
            return text.isEmpty ? "unparseable reply" : String(decoding: text, as: UTF8.self)
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(r))
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(r), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(r), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RESPValue] = []
            elements.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let element = r.element[i] { elements.append(convert(element)) } else { elements.append(.null) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func bytes(_ r: redisReply) -> [UInt8] {
        guard let str = r.str, r.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: str, count: Int(r.len)))
    }
}

/// Where the reply (or replies) of one write go.
enum ReplySink: Sendable {
    case single(EventLoopPromise<RESPValue>)
    case batch(EventLoopPromise<[RESPValue]>, count: Int)

    func fail(_ error: any Error) {
        switch self {
        case .single(let p): p.fail(error)
        case .batch(let p, _): p.fail(error)
        }
    }
}

/// One write: the encoded commands and where their replies go, in order.
struct RedisRequest: Sendable {
    var buffer: ByteBuffer
    var sink: ReplySink
}

/// Holds the pending replies of a connection in FIFO order and matches inbound replies to them.
/// Push messages of a subscriber connection (`message`/`pmessage`) go to `pushHandler` instead:
/// read straight from the socket's bytes (`RedisPush.parse`) while hiredis holds nothing, through
/// hiredis otherwise, so a subscriber's pushes cost no allocation each.
final class RESPHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private final class Batch {
        let promise: EventLoopPromise<[RESPValue]>
        let count: Int
        var replies: [RESPValue]
        init(promise: EventLoopPromise<[RESPValue]>, count: Int) {
            self.promise = promise
            self.count = count
            self.replies = []
            self.replies.reserveCapacity(count)
        }
    }

    private enum Pending {
        case single(EventLoopPromise<RESPValue>)
        case batch(Batch)
    }

    private let reader = HiredisReplyReader()
    private var pending = CircularBuffer<Pending>(initialCapacity: 64)
    private var failure: RedisError?
    private var flushScheduled = false
    private let pushHandler: (@Sendable (RedisPush) -> Void)?
    /// The start of a push whose end has not arrived (subscriber connections only).
    private var partialPush: ByteBuffer?

    init(pushHandler: (@Sendable (RedisPush) -> Void)? = nil) {
        self.pushHandler = pushHandler
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.sink.fail(failure)
            promise?.fail(failure)
            return
        }
        switch request.sink {
        case .single(let p):
            pending.append(.single(p))
        case .batch(let p, let count):
            if count == 0 {
                p.succeed([])
            } else {
                pending.append(.batch(Batch(promise: p, count: count)))
            }
        }
        context.write(wrapOutboundOut(request.buffer), promise: promise)
    }

    /// Writes from many callers arrive as separate event-loop tasks, each asking for a flush.
    /// Deferring the flush to a task queued after them sends them in one syscall.
    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if let pushHandler {
                readPushes(&buffer, to: pushHandler)
                guard buffer.readableBytes > 0 else { return }
            }
            try reader.feed(buffer)
            while let reply = try reader.next() {
                deliver(reply, context: context)
            }
        } catch {
            failAll(error)
            context.close(promise: nil)
        }
    }

    /// Hands the pushes at the front of `buffer` to `handler` and leaves the rest (a reply, or
    /// anything after hiredis was left holding part of one) for hiredis. A push cut off by the
    /// end of the read waits in `partialPush` for the next.
    private func readPushes(_ buffer: inout ByteBuffer, to handler: @Sendable (RedisPush) -> Void) {
        if var partial = partialPush {
            partialPush = nil
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        guard !reader.holdsPartialReply else { return }
        while buffer.readableBytes > 0 {
            switch RedisPush.parse(&buffer) {
            case .push(let push):
                handler(push)
            case .incomplete:
                partialPush = buffer
                buffer.moveReaderIndex(to: buffer.writerIndex)
                return
            case .other:
                return
            }
        }
    }

    private func deliver(_ reply: RESPValue, context: ChannelHandlerContext) {
        if let pushHandler, let push = RedisPush(reply: reply) {
            pushHandler(push)
            return
        }
        guard let first = pending.first else {
            failAll(.protocolError("reply without a pending command: \(reply)"))
            context.close(promise: nil)
            return
        }
        switch first {
        case .single(let p):
            pending.removeFirst()
            p.succeed(reply)
        case .batch(let batch):
            batch.replies.append(reply)
            if batch.replies.count == batch.count {
                pending.removeFirst()
                batch.promise.succeed(batch.replies)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(.connectionClosed)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        if failure == nil { failure = error }
        while let entry = pending.popFirst() {
            switch entry {
            case .single(let p): p.fail(error)
            case .batch(let b): b.promise.fail(error)
            }
        }
    }
}
