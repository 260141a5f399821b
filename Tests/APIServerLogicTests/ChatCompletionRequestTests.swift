/// How a `POST /v1/chat/completions` body is read, without a server: what is accepted (string or
/// text-part content, any model name, OpenAI's extra parameters) and what is a 400 naming `param`.
@testable import APIServer
import Channels
import NIOCore
import SwitchboardCore
import Testing

@Suite("Chat completion requests")
struct ChatCompletionRequestTests {
    func parse(_ json: String) throws -> ChatCompletionRequest {
        try ChatCompletionRequest.parse(ByteBuffer(string: json), maxCharacters: 100)
    }

    func param(_ json: String) -> String?? {
        do {
            _ = try parse(json)
            return .none
        } catch let error as OpenAIError {
            #expect(error.type == "invalid_request_error")
            return .some(error.param)
        } catch {
            Issue.record("unexpected \(error)")
            return .none
        }
    }

    @Test func readsHistoryQuestionAndOptions() throws {
        let request = try parse(#"""
            {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 50, "stream": true, "stream_options": {"include_usage": true}, "n": 1,
             "messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                          {"role": "user", "content": [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}]}]}
            """#)
        #expect(request.model == "gpt-4o")
        #expect(request.stream && request.includeUsage)
        #expect(request.history == [.init(role: .system, content: "rules"), .init(role: .user, content: "a"), .init(role: .assistant, content: "b")])
        #expect(request.question == "line one\nline two")
        let plain = try parse(#"{"messages": [{"role": "user", "content": "hi"}]}"#)
        #expect(plain.model == "switchboard" && !plain.stream && !plain.includeUsage && plain.history.isEmpty)
    }

    @Test func refusesWhatItCannotAnswerNamingTheParameter() {
        #expect(param(#"{"messages": [{"role": "user", "content": "hi"}], "n": 2}"#) == "n")
        #expect(param(#"{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": 1}}"#) == "stream_options.include_usage")
        #expect(param(#"{"model": 5, "messages": [{"role": "user", "content": "hi"}]}"#) == "model")
        #expect(param(#"{"messages": [{"role": "user"}]}"#) == "messages[0].content")
        #expect(param(#"{"messages": [{"content": "hi"}]}"#) == "messages[0].role")
        #expect(param(#"{"messages": [{"role": "user", "content": "\#(String(repeating: "x", count: 101))"}]}"#) == "messages[0].content")
        #expect(param(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]}"#) == "messages[1].role")
        #expect(param("") == .some(nil))
        #expect(param("null") == .some(nil))
    }
}
