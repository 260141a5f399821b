/// Live support's assembly: the publisher the api and workers publish with (into the gateway's
/// engine, or through a Centrifugo-compatible HTTP API), the token minter (sharing the gateway's
/// secret), and the api's `LiveSupport`.
import APIServer
import Foundation
import Gateway
import Logging
import Realtime
import RedisClient
import SwitchboardConfig

enum RealtimeAssembly {
    /// The publisher the configuration chooses. `gateway` is the gateway's configuration (its
    /// engine prefix and namespace options, which the engine publisher must share).
    static func publisher(settings: Settings, gateway: GatewayConfiguration, redis: RedisClient, logger: Logger) -> LivePublisher {
        let publisher: any RealtimePublisher
        switch settings.realtime.publisher {
        case .engine:
            publisher = EngineRealtimePublisher(
                redis: redis, prefix: gateway.redisPrefix, namespaces: namespaces(gateway), historyMetaTTL: gateway.historyMetaTTL)
        case .centrifugo:
            publisher = CentrifugoHTTPPublisher(
                url: settings.realtime.centrifugoURL ?? "", apiKey: settings.realtime.centrifugoAPIKey ?? gateway.apiKey ?? "")
        }
        return LivePublisher(publisher: publisher, logger: logger)
    }

    /// Live support's namespaces as this gateway configures them (built-in unless the configuration names them).
    static func namespaces(_ gateway: GatewayConfiguration) -> [RealtimeNamespace] {
        LiveSupportChannels.namespaces.map { builtIn in
            guard let configured = gateway.namespaces.first(where: { $0.name == builtIn.name }) else { return builtIn }
            return RealtimeNamespace(
                name: builtIn.name, historySize: configured.options.historySize, historyTTL: configured.options.historyTTL,
                forceRecovery: configured.options.forceRecovery, allowPublishForSubscriber: configured.options.allowPublishForSubscriber)
        }
    }

    /// The api's live support. Tokens need the secret the gateway checks: the configured one, or
    /// the gateway's own when it runs in this process; otherwise token routes answer 503.
    static func liveSupport(
        settings: Settings, gateway: GatewayConfiguration, gatewayInProcess: Bool, publisher: LivePublisher, logger: Logger
    ) -> LiveSupport {
        let secret = settings.gatewayTokenSecret ?? (gatewayInProcess ? gateway.tokenSecret : nil)
        if secret == nil { logger.warning("gateway.token_secret is not set: live support cannot mint gateway tokens on this api node") }
        let host = gateway.host == "0.0.0.0" ? "127.0.0.1" : gateway.host
        return LiveSupport(
            publisher: publisher, tokens: secret.flatMap { $0.isEmpty ? nil : RealtimeTokenMinter(secret: $0, ttl: settings.realtime.tokenTTL) },
            realtimeURL: settings.realtime.publicURL ?? "ws://\(host):\(gateway.port)/connection/websocket",
            sessionsPerIPPerMinute: settings.realtime.sessionsPerIPPerMinute, defaultMessagesPerMinute: settings.realtime.messagesPerMinute,
            defaultMessagesPerSession: settings.realtime.messagesPerSession, widgetMessagesPerMinute: settings.realtime.widgetMessagesPerMinute)
    }
}
