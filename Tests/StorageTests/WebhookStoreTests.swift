/// `webhook_requests` and `webhook_secrets` against real MariaDB: a request's callback and
/// metadata read back, a rotated secret replaces the old one, and both go with what they belong to.
import Foundation
import Storage
import SwitchboardCore
import Testing

@Suite("Webhook store (real MariaDB)")
struct WebhookStoreTests {
    @Test func requestsAndSecretsRoundTripAndGoWithTheirOwners() async throws {
        try await TestDatabase.with { _, stores in
            let user = try await stores.users.createUser(email: "hook@example.com", name: "H", role: .user)
            let key = try await stores.apiKeys.createAPIKey(userID: user.id, name: "k", prefix: "sk_hook", keyHash: String(repeating: "a", count: 64))
            let (_, message) = try await stores.messages.startChat(
                title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: "hi", channel: .webhook))
            #expect(message.channel == .webhook)

            try await stores.webhooks.recordRequest(
                WebhookRequest(messageID: message.id, apiKeyID: key.id, callbackURL: "https://example.com/hook", metadata: #"{"ticket":7}"#))
            let request = try #require(try await stores.webhooks.request(messageID: message.id))
            #expect(request.callbackURL == "https://example.com/hook")
            #expect(request.apiKeyID == key.id)
            let metadata = try #require(request.metadata)
            #expect((try JSONSerialization.jsonObject(with: Data(metadata.utf8)) as? [String: Int]) == ["ticket": 7])

            try await stores.webhooks.setSigningSecret(apiKeyID: key.id, sealed: Data([1, 2, 3]))
            try await stores.webhooks.setSigningSecret(apiKeyID: key.id, sealed: Data([4, 5]))
            #expect(try await stores.webhooks.signingSecret(apiKeyID: key.id) == Data([4, 5]), "rotation replaces the secret")

            #expect(try await stores.apiKeys.deleteAPIKey(id: key.id, ownerID: user.id))
            #expect(try await stores.webhooks.signingSecret(apiKeyID: key.id) == nil, "the secret goes with its key")
            #expect(try await stores.webhooks.request(messageID: message.id)?.apiKeyID == nil, "the request stays, without its key")

            #expect(try await stores.chats.deleteChat(id: message.chatID, ownerID: user.id))
            #expect(try await stores.webhooks.request(messageID: message.id) == nil, "the request goes with its message")
        }
    }
}
