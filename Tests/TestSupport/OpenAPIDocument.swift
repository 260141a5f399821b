/// The routes an OpenAPI document in docs/ lists, for tests that hold it to what a server serves.
import Foundation

public enum OpenAPIDocument {
    /// `METHOD path` of the `paths:` block of docs/`name` (two-space path keys, four-space methods).
    public static func routes(_ name: String) throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs").appendingPathComponent(name), encoding: .utf8)
        var routes: Set<String> = []
        var inPaths = false
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") && !line.isEmpty { break }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     ") {
                let key = line.dropFirst(4).prefix { $0 != ":" }
                if ["get", "post", "put", "patch", "delete", "options"].contains(key) { routes.insert("\(key.uppercased()) \(path)") }
            }
        }
        return routes
    }
}
