@testable import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The static pages of `web/` as the api serves them: types, cache validators, security headers.
@Suite("Web pages")
struct WebPagesTests {
    static let csp = HTTPField.Name("Content-Security-Policy")!
    static let nosniff = HTTPField.Name("X-Content-Type-Options")!

    @Test func pagesAndAssetsCarryTheirTypeAnETagAndAStrictPolicy() async throws {
        try await TestEnvironment.with { env in
            try await env.application().test(.router) { client in
                let pages: [(String, String, String)] = [
                    ("/", "text/html; charset=utf-8", "data-testid=\"chat-input\""),
                    ("/console", "text/html; charset=utf-8", "data-testid=\"login-email\""),
                    ("/assets/chat.js", "text/javascript; charset=utf-8", "EventSource"),
                    ("/assets/realtime.js", "text/javascript; charset=utf-8", "SBRealtime"),
                    ("/assets/app.css", "text/css; charset=utf-8", ".message"),
                ]
                for (path, type, content) in pages {
                    let response = try await client.execute(uri: path, method: .get)
                    #expect(response.status == .ok, "\(path)")
                    #expect(response.headers[.contentType] == type, "\(path)")
                    #expect(response.text.contains(content), "\(path)")
                    #expect(response.headers[.cacheControl] == "no-cache")
                    #expect(response.headers[Self.nosniff] == "nosniff")
                    let policy = try #require(response.headers[Self.csp])
                    #expect(policy.contains("default-src 'none'"))
                    #expect(policy.contains("script-src 'self'"))
                    #expect(!policy.contains("unsafe-inline"))
                    #expect(policy.contains("frame-ancestors 'none'"))
                    let etag = try #require(response.headers[.eTag])
                    // Unchanged: 304 with no body.
                    try await client.execute(uri: path, method: .get, headers: [.ifNoneMatch: etag]) { again in
                        #expect(again.status == .notModified)
                        #expect(again.body.readableBytes == 0)
                        #expect(again.headers[.eTag] == etag)
                    }
                    try await client.execute(uri: path, method: .get, headers: [.ifNoneMatch: "\"stale\""]) { #expect($0.status == .ok) }
                }
            }
        }
    }

    @Test func onlyPlainFilesOfTheWebFolderAreServed() async throws {
        try await TestEnvironment.with { env in
            try await env.application().test(.router) { client in
                for path in ["/assets/nothing.js", "/assets/..%2FPackage.swift", "/assets/.hidden.js", "/assets/index", "/assets/Package.swift"] {
                    try await client.execute(uri: path, method: .get) { response in
                        #expect(response.status == .notFound, "\(path)")
                        #expect(response.errorCode == "not_found")
                    }
                }
            }
            #expect(!StaticAssets.isServable("../x.js"))
            #expect(!StaticAssets.isServable("a/b.js"))
            #expect(StaticAssets.isServable("chat.js"))
        }
    }

    @Test func theConnectSourcesAreAddedToThePolicy() {
        let headers = StaticAssets.securityHeaders(connectSources: ["ws://127.0.0.1:8000", "bad; script-src *"])
        let policy = headers[Self.csp] ?? ""
        #expect(policy.contains("connect-src 'self' ws://127.0.0.1:8000;"))
        #expect(!policy.contains("script-src *"))
    }
}
