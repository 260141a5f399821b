import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One item of an SSE stream as a client sees it.
struct SSEFrame: Sendable, Equatable {
    var id: String?
    var event: String?
    var data: String
    var comment: String?

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
    }
}

/// A minimal streaming HTTP/1.1 client: the response head, then the body as it arrives, parsed
/// into SSE frames. Closing it drops the connection mid-stream, like a browser losing its network.
final class StreamingHTTPClient: Sendable {
    let channel: any Channel
    let parts: AsyncStream<HTTPClientResponsePart>

    struct Head: Sendable {
        var status: Int
        var headers: HTTPHeaders
    }

    private init(channel: any Channel, parts: AsyncStream<HTTPClientResponsePart>) {
        self.channel = channel
        self.parts = parts
    }

    static func send(
        port: Int, method: HTTPMethod, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) async throws -> StreamingHTTPClient {
        let (stream, continuation) = AsyncStream<HTTPClientResponsePart>.makeStream()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponsePartCollector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: "\(body.count)") }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return StreamingHTTPClient(channel: channel, parts: stream)
    }

    func close() async {
        try? await channel.close().get()
    }
}

/// Reads a streaming response: its head first, then SSE frames one at a time.
struct SSEReader {
    private var iterator: AsyncStream<HTTPClientResponsePart>.AsyncIterator
    private var pending: [UInt8] = []
    private(set) var head: StreamingHTTPClient.Head?
    private(set) var rawBody: [UInt8] = []
    private var finished = false
    /// The response ended with its terminating chunk (not with the connection alone).
    private(set) var sawEnd = false

    init(_ client: StreamingHTTPClient) { iterator = client.parts.makeAsyncIterator() }

    mutating func readHead() async throws -> StreamingHTTPClient.Head {
        if let head { return head }
        while let part = await iterator.next() {
            switch part {
            case .head(let value):
                let head = StreamingHTTPClient.Head(status: Int(value.status.code), headers: value.headers)
                self.head = head
                return head
            case .body(let buffer): pending += Array(buffer.readableBytesView)
            case .end:
                finished = true
                sawEnd = true
            }
        }
        throw CancellationError()
    }

    /// The next frame (comments included); nil at the end of the response.
    mutating func next() async throws -> SSEFrame? {
        _ = try await readHead()
        while true {
            if let frame = takeFrame() { return frame }
            if finished { return nil }
            guard let part = await iterator.next() else {
                finished = true
                return takeFrame()
            }
            switch part {
            case .head: break
            case .body(let buffer):
                let bytes = Array(buffer.readableBytesView)
                rawBody += bytes
                pending += bytes
            case .end:
                finished = true
                sawEnd = true
            }
        }
    }

    /// The remaining body as text (for non-stream answers).
    mutating func remainingBody() async throws -> String {
        _ = try await readHead()
        while !finished, let part = await iterator.next() {
            switch part {
            case .body(let buffer):
                pending += Array(buffer.readableBytesView)
            case .end: finished = true
            default: break
            }
        }
        return String(decoding: pending, as: UTF8.self)
    }

    private mutating func takeFrame() -> SSEFrame? {
        guard let range = findBlankLine() else { return nil }
        let block = String(decoding: pending[..<range.lowerBound], as: UTF8.self)
        pending.removeSubrange(..<range.upperBound)
        var frame = SSEFrame(id: nil, event: nil, data: "", comment: nil)
        var dataLines: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") {
                frame.comment = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("id: ") {
                frame.id = String(line.dropFirst(4))
            } else if line.hasPrefix("event: ") {
                frame.event = String(line.dropFirst(7))
            } else if line.hasPrefix("data: ") {
                dataLines.append(String(line.dropFirst(6)))
            } else if line.hasPrefix("retry: ") {
                frame.comment = "retry"
            }
        }
        frame.data = dataLines.joined(separator: "\n")
        return frame
    }

    private func findBlankLine() -> Range<Int>? {
        guard pending.count >= 2 else { return nil }
        for i in 0..<(pending.count - 1) where pending[i] == 10 && pending[i + 1] == 10 {
            return i..<(i + 2)
        }
        return nil
    }

    /// Frames until (and including) the final one or the end; skips comments.
    mutating func events(until stop: (SSEFrame) -> Bool = { $0.event == "complete" || $0.event == "error" }) async throws -> [SSEFrame] {
        var frames: [SSEFrame] = []
        while let frame = try await next() {
            if frame.event == nil { continue }
            frames.append(frame)
            if stop(frame) { break }
        }
        return frames
    }
}

/// Hands every response part a client channel reads to an `AsyncStream`, finishing it at the end
/// of the response or of the connection.
final class ResponsePartCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let continuation: AsyncStream<HTTPClientResponsePart>.Continuation
    init(_ continuation: AsyncStream<HTTPClientResponsePart>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        continuation.yield(part)
        if case .end = part { continuation.finish() }
    }
    func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish()
        context.close(promise: nil)
    }
}

/// Raw bytes to a listener and whatever comes back until the server closes the connection (or 10 s pass).
enum RawExchange {
    struct Answer {
        var text: String
        /// The server closed the connection.
        var closed: Bool
    }

    static func send(_ bytes: [UInt8], port: Int) async throws -> Answer {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(continuation)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
        let deadline = Task {
            try await Task.sleep(for: .seconds(10))
            continuation.finish()
        }
        var received: [UInt8] = []
        for await chunk in stream { received += chunk.readableBytesView }
        deadline.cancel()
        let closed = !channel.isActive
        try? await channel.close().get()
        return Answer(text: String(decoding: received, as: UTF8.self), closed: closed)
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<ByteBuffer>.Continuation

        init(_ continuation: AsyncStream<ByteBuffer>.Continuation) { self.continuation = continuation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
    }
}
