@testable import APIServer
import Testing

/// The pieces of signing in and of the static pages that need no server.
@Suite struct WebLogicTests {
    @Test func theSessionCookieIsFoundAmongOthers() {
        let lines = ["theme=dark; sb_session=abc_DEF-123", "other=1"]
        #expect(WebSessions.cookie("sb_session", lines: lines) == "abc_DEF-123")
        #expect(WebSessions.cookie("missing", lines: lines) == nil)
    }

    @Test func tokensAreLongRandomAndURLSafe() {
        let tokens = (0..<20).map { _ in WebSessions.randomToken() }
        #expect(Set(tokens).count == 20)
        #expect(tokens.allSatisfy(WebSessions.isWellFormed))
        #expect(!WebSessions.isWellFormed("short"))
        #expect(!WebSessions.isWellFormed(String(repeating: "a", count: 42) + ";"))
        #expect(WebSessions.hash("x") != "x" && WebSessions.hash("x").count == 64)
    }

    @Test func theCookieIsHttpOnlyLaxAndSecureWhenAsked() {
        let plain = WebSessions.setCookie(token: "t", settings: WebSettings())
        #expect(plain == "sb_session=t; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax")
        let secure = WebSessions.clearCookie(settings: WebSettings(secureCookie: true))
        #expect(secure == "sb_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure")
    }

    @Test func passwordsAreEightCharactersToSeventyTwoBytes() {
        #expect(Passwords.problem("1234567") == .tooShort(8))
        #expect(Passwords.problem("12345678") == nil)
        #expect(Passwords.problem(String(repeating: "é", count: 37)) == .tooLong(72))
    }

    @Test func onlyPlainFileNamesAreServable() {
        for name in ["chat.js", "app.css", "index.html", "logo-2.svg"] { #expect(StaticAssets.isServable(name), "\(name)") }
        for name in ["", ".env", "../x.js", "a/b.js", "x.swift", "x", "x..js", "x.JS"] { #expect(!StaticAssets.isServable(name), "\(name)") }
    }
}
