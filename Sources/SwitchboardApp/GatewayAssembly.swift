/// The gateway role's configuration: its section of the settings decoded by the gateway's own
/// type, with the values `Settings` read from the environment laid over it.
import Foundation
import Gateway
import Logging
import SwitchboardConfig
import SwitchboardCore

enum GatewayAssembly {
    /// The `gateway` section decoded by the gateway's own type, then the environment overrides.
    /// Development without a secret gets a random one per process (tokens from `switchboard token`
    /// then need SB_GATEWAY_TOKEN_SECRET); production has already refused to start without one.
    static func configuration(settings: Settings, logger: Logger) throws -> GatewayConfiguration {
        var configuration: GatewayConfiguration
        do {
            if let section = settings.gatewaySection {
                configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: section.jsonData())
            } else {
                configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data("{}".utf8))
            }
        } catch {
            throw ConfigError(key: "gateway", "invalid gateway section: \(error)")
        }
        configuration.port = settings.gatewayPort
        configuration.internalHost = settings.gatewayInternalHost
        configuration.internalPort = settings.gatewayInternalPort
        if let host = settings.gatewayHost { configuration.host = host }
        if let secret = settings.gatewayTokenSecret { configuration.tokenSecret = secret }
        if let previous = settings.gatewayPreviousTokenSecret, !previous.isEmpty { configuration.previousTokenSecret = previous }
        if let key = settings.gatewayAPIKey { configuration.apiKey = key }
        // Production refuses tokens that never expire unless the gateway section says otherwise.
        var sectionDecides = false
        if case .object(let keys)? = settings.gatewaySection { sectionDecides = keys["require_token_expiry"] != nil }
        if settings.environment == .production, !sectionDecides {
            configuration.requireTokenExpiry = true
        }
        if let origins = settings.gatewayAllowedOrigins { configuration.allowedOrigins = origins }
        if configuration.tokenSecret?.isEmpty ?? true {
            configuration.tokenSecret = randomSecret()
            logger.warning("gateway.token_secret is not set: using a random secret for this process only (development)")
        }
        if configuration.apiKey?.isEmpty ?? true {
            configuration.apiKey = randomSecret()
            logger.warning("gateway.api_key is not set: the gateway HTTP API uses a random key for this process only (development)")
        }
        return configuration
    }

    static func randomSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
