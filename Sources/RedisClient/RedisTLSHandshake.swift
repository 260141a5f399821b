/// TLS for `rediss://` connections (swift-nio-ssl): the client context built from `RedisTLS`, and
/// a handler that completes when the handshake does, so a certificate the client does not trust
/// is reported as such when connecting instead of as a closed connection on the first command.
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

extension RedisTLS {
    /// The client context for these settings; reads the PEM files.
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.trustRoots = .file(caFile) }
        if let certificateFile, let keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        configuration.certificateVerification = verify ? .fullVerification : .none
        return try NIOSSLContext(configuration: configuration)
    }

    /// The name sent as SNI and checked against the certificate; none for an IP address (the
    /// certificate is then checked against the address connected to).
    func hostname(for host: String) -> String? {
        let name = serverName ?? host
        let isAddress = name.contains(":") || name.split(separator: ".").allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        return isAddress ? nil : name
    }
}

/// The outcome of one connection's TLS handshake, completed exactly once (by the handler, or by
/// the connecting code when the channel never came up).
final class TLSHandshake: Sendable {
    let promise: EventLoopPromise<Void>
    private let done = Mutex(false)

    init(eventLoop: any EventLoop) {
        promise = eventLoop.makePromise()
    }

    func finish(_ result: Result<Void, any Error>) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        if first { promise.completeWith(result) }
    }
}

/// Finishes `handshake` when the TLS handshake completes, or when the channel errs or closes first.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let handshake: TLSHandshake

    init(handshake: TLSHandshake) {
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { handshake.finish(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.finish(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.finish(.failure(ChannelError.eof))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshake.finish(.failure(ChannelError.ioOnClosedChannel))
    }
}
