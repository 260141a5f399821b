/// The Origin check on the WebSocket upgrade.
import Foundation

/// The Origin check on the WebSocket upgrade.
enum OriginCheck {
    static func allows(origin: String?, host: String?, allowed: [String]) -> Bool {
        guard let origin, !origin.isEmpty else { return true }  // not a browser
        let normalized = origin.lowercased()
        if allowed.isEmpty {
            // Same host only (ports aside: non-browser clients often send an Origin without one).
            guard let host = host?.lowercased(), let schemeEnd = normalized.range(of: "://") else { return false }
            return hostname(String(normalized[schemeEnd.upperBound...])) == hostname(host)
        }
        for pattern in allowed {
            let pattern = pattern.lowercased()
            if pattern == "*" || pattern == normalized { return true }
            if pattern.contains("*"), HTTPAPI.glob(pattern, matches: normalized) { return true }
        }
        return false
    }

    private static func hostname(_ authority: String) -> Substring {
        let host = authority.split(separator: "/").first ?? ""
        if host.hasPrefix("[") { return host.split(separator: "]").first ?? host }
        return host.split(separator: ":").first ?? host
    }
}
