/// The `SB_GATEWAY_*` environment overrides of the gateway's configuration.
import Foundation

extension GatewayConfiguration {
    /// Applies SB_GATEWAY_* environment overrides.
    public mutating func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let value = environment["SB_GATEWAY_TOKEN_SECRET"], !value.isEmpty { tokenSecret = value }
        if let value = environment["SB_GATEWAY_PREVIOUS_TOKEN_SECRET"], !value.isEmpty { previousTokenSecret = value }
        if let value = environment["SB_GATEWAY_API_KEY"], !value.isEmpty { apiKey = value }
        if let value = environment["SB_GATEWAY_PORT"], let port = Int(value) { self.port = port }
        if let value = environment["SB_GATEWAY_ALLOWED_ORIGINS"] {
            allowedOrigins = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }
}
