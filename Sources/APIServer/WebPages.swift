import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import Synchronization

/// The web pages the api serves from plain files in the repository's `web/` folder (no build
/// step): `/` is the web chat (`web/index.html`), `/console` the operator console
/// (`web/console.html`), `/assets/{name}` any other file directly in `web/`. Every answer carries
/// a strong `ETag` and `Cache-Control: no-cache` (a browser revalidates each time and gets `304`
/// while the file is unchanged: the files have no content hash in their names, so a longer
/// cache could serve a stale script beside a new page), `X-Content-Type-Options: nosniff`, and
/// a Content-Security-Policy that allows scripts, styles and connections from the page's own
/// origin only (plus `web.connect_sources`), no inline code, no framing.
public enum WebPages {
    static func register(on router: Router<APIRequestContext>, recorder: RouteRecorder, dependencies: APIDependencies) {
        let assets = StaticAssets(directory: StaticAssets.locate(configured: dependencies.web.assetsDirectory), settings: dependencies.web)
        recorder.record(.get, "/")
        router.get("/") { request, _ in try await assets.response(for: "index.html", request: request) }
        recorder.record(.get, "/console")
        router.get("/console") { request, _ in try await assets.response(for: "console.html", request: request) }
        recorder.record(.get, "/assets/:name")
        router.get("/assets/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            return try await assets.response(for: name, request: request)
        }
    }
}

/// The files of `web/`, read off the event loops on first use and kept in memory with their ETag.
final class StaticAssets: Sendable {
    struct Asset: Sendable {
        let bytes: ByteBuffer
        let etag: String
        let contentType: String
    }

    let directory: URL?
    let securityHeaders: HTTPFields
    private let cache = Mutex<[String: Asset]>([:])

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
        "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon", "json": "application/json; charset=utf-8",
        "txt": "text/plain; charset=utf-8",
    ]

    init(directory: URL?, settings: WebSettings) {
        self.directory = directory
        securityHeaders = Self.securityHeaders(connectSources: settings.connectSources)
    }

    static func securityHeaders(connectSources: [String]) -> HTTPFields {
        let connect = (["'self'"] + connectSources.filter { !$0.contains(";") && !$0.contains(",") }).joined(separator: " ")
        let policy = [
            "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'",
            "connect-src \(connect)", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
        ].joined(separator: "; ")
        return [
            HTTPField.Name("Content-Security-Policy")!: policy,
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("Referrer-Policy")!: "same-origin",
            HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
        ]
    }

    /// A plain file name directly in `web/` with a known type: no folders, no dot files.
    static func isServable(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 100, !name.hasPrefix("."), !name.contains(".."),
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }),
              let ext = name.split(separator: ".").last, contentTypes[String(ext)] != nil
        else { return false }
        return true
    }

    func response(for name: String, request: Request) async throws -> Response {
        guard Self.isServable(name), let asset = try await load(name) else {
            throw HTTPError(.notFound, message: "no page or file \(request.uri.path)")
        }
        var headers = securityHeaders
        headers[.eTag] = asset.etag
        headers[.cacheControl] = "no-cache"
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.bytes))
    }

    private func load(_ name: String) async throws -> Asset? {
        if let asset = cache.withLock({ $0[name] }) { return asset }
        guard let directory else { return nil }
        let url = directory.appendingPathComponent(name)
        guard let data = try await NIOThreadPool.singleton.runIfActive({ try? Data(contentsOf: url) }) else { return nil }
        let ext = String(name.split(separator: ".").last ?? "")
        let digest = SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined()
        let asset = Asset(bytes: ByteBuffer(bytes: data), etag: "\"\(digest)\"", contentType: Self.contentTypes[ext] ?? "application/octet-stream")
        cache.withLock { $0[name] = asset }
        return asset
    }

    /// The `web/` folder: `web.assets_dir` when set; else the first of `web/` beside or above the
    /// executable (`.build/debug/switchboard` in a checkout), in the working directory, in this
    /// source file's checkout (tests), or `/usr/share/switchboard/web` (the container image).
    static func locate(configured: String?, fileManager: FileManager = .default) -> URL? {
        if let configured, !configured.isEmpty { return URL(fileURLWithPath: configured, isDirectory: true) }
        var candidates: [URL] = []
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent("web"))
            directory.deleteLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: fileManager.currentDirectoryPath).appendingPathComponent("web"))
        candidates.append(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("web"))
        candidates.append(URL(fileURLWithPath: "/usr/share/switchboard/web"))
        return candidates.first { fileManager.fileExists(atPath: $0.appendingPathComponent("index.html").path) }
    }
}
