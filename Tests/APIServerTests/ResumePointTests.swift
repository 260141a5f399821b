@testable import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The resume point of a turn stream as the web chat sends it after a reload: the
/// `lastEventId` query parameter, which an empty `Last-Event-ID` header does not hide.
@Suite("Resume point")
struct ResumePointTests {
    /// An empty `Last-Event-ID` header does not hide the query (a page that resumes after a
    /// reload sends the query; its EventSource may send the header empty); a valid header wins
    /// over the query, but a malformed query is still refused, not ignored (schemathesis found it
    /// accepted next to a valid header).
    @Test(arguments: [("", "%C2%84"), ("6-690864231432", "%C2%99")])
    func aMalformedQueryResumePointIsRefusedWhateverTheHeader(header: String, query: String) async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let accepted = try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "hello there"]))
                let id = try #require(accepted.json["messageId"] as? Int)
                var headers = HTTPFields.auth(key, json: false)
                headers[TurnEventRelay.lastEventIDHeader] = header
                try await client.execute(uri: "/api/v1/messages/\(id)/events?lastEventId=\(query)", method: .get, headers: headers) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorCode == "invalid_field")
                    #expect(String(buffer: response.body).contains("lastEventId"))
                }
            }
        }
    }
}
