import AIProviders
import Files
import Foundation
import Storage
import SwitchboardCore

/// `rag_query`: the passages of the user's own indexed documents closest to the question, with
/// their sources (file, position, score). No model writes anything here: the chat node that
/// depends on it gets the passages as context, and the turn's `complete` event and stored reply
/// name the sources.
public struct RagQueryCapability: Capability {
    public static let capabilityName = "rag_query"
    public let name = RagQueryCapability.capabilityName
    public let summary = "find passages in the user's uploaded documents (input text: the question); a chat or compose_reply node that depends on it answers from them"
    public var search: FileSearch
    public var chunks: Int
    public var minimumScore: Float

    public init(search: FileSearch, chunks: Int = 4, minimumScore: Float = 0.2) {
        self.search = search
        self.chunks = chunks
        self.minimumScore = minimumScore
    }

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        let question = String((invocation.inputs["text"] ?? invocation.turn.text).prefix(2000))
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw CapabilityError("no question to look up") }
        let hits: [SearchHit]
        do {
            // The classified topic's documents when it has some, else every document of the user.
            let topics = invocation.turn.topicIDs
            hits = try await search.search(
                ownerID: invocation.turn.userID, query: question, k: chunks, scope: topics.isEmpty ? .all : .preferring(topics))
        } catch let error as AIProviderError {
            throw CapabilityError("provider_\(error.code): the question could not be embedded")
        }
        let kept = hits.filter { $0.score >= minimumScore }
        guard !kept.isEmpty else { return CapabilityResult(text: "No passage of the user's documents matches the question.") }
        let text = kept.enumerated().map { index, hit in
            "[\(index + 1)] \(hit.fileName)\(hit.position.isEmpty ? "" : " (\(hit.position))"):\n\(hit.text)"
        }.joined(separator: "\n\n")
        return CapabilityResult(
            text: "Passages from the user's documents:\n\n" + text,
            sources: kept.map { ReplySource(fileId: $0.fileID, name: $0.fileName, position: $0.position, score: $0.score) })
    }
}
