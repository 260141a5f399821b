/// Starting a chat that arrives with its history (the OpenAI-compatible endpoint's earlier
/// messages): the chat, every earlier message and the new question in one transaction.
import Foundation
import SwitchboardCore

extension MariaDBMessageStore {
    public func startChat(title: String, history: [NewMessage], then message: NewMessage) async throws -> (chat: Chat, message: Message) {
        try await database.transaction { tx in
            let chat = try await MariaDBChatStore.createChat(
                on: tx, ownerID: message.ownerID, title: title, channel: message.channel, externalThreadKey: nil)
            for var earlier in history {
                earlier.chatID = chat.id
                _ = try await Self.insert(earlier, on: tx)
            }
            var last = message
            last.chatID = chat.id
            return (chat, try await Self.insert(last, on: tx))
        }
    }
}

extension MessageStore {
    /// For stores that cannot hold a history: a chat with history is refused unless it is empty.
    public func startChat(title: String, history: [NewMessage], then message: NewMessage) async throws -> (chat: Chat, message: Message) {
        guard history.isEmpty else { throw SwitchboardError.unavailable("this message store cannot start a chat with history") }
        return try await startChat(title: title, externalThreadKey: nil, firstMessage: message)
    }
}
