import Testing

@testable import AIProviders

@Suite struct ServerSentEventParserTests {
    static let stream = ": heartbeat\r\ndata: {\"a\":1}\r\n\r\nevent: note\ndata: line one\ndata: line two\nid: 7\n\ndata:[DONE]\n\n"

    @Test func parsesEventsWhateverTheChunking() throws {
        let bytes = Array(Self.stream.utf8)
        let expected = [
            ServerSentEvent(data: "{\"a\":1}"),
            ServerSentEvent(event: "note", data: "line one\nline two", id: "7"),
            ServerSentEvent(data: "[DONE]", id: "7"),
        ]
        for pieceSize in [1, 2, 3, 5, 8, 13, bytes.count] {
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            for start in stride(from: 0, to: bytes.count, by: pieceSize) {
                events += try parser.feed(bytes[start..<min(start + pieceSize, bytes.count)])
            }
            #expect(parser.finish() == nil)
            #expect(events == expected, "piece size \(pieceSize)")
        }
    }

    @Test func bareCarriageReturnsEndLinesAndAnUnterminatedEventIsKept() throws {
        var parser = ServerSentEventParser()
        let events = try parser.feed(Array("data: one\r\rdata: two".utf8))
        #expect(events == [ServerSentEvent(data: "one")])
        #expect(parser.finish() == ServerSentEvent(data: "two"))
    }

    @Test func refusesEndlessLines() {
        var parser = ServerSentEventParser(maximumLineLength: 16)
        #expect(throws: ServerSentEventParser.LineTooLong.self) {
            _ = try parser.feed(Array(String(repeating: "x", count: 17).utf8))
        }
    }
}

@Suite struct JSONExtractionTests {
    @Test(arguments: [
        ("{\"topic\":\"general\"}", "{\"topic\":\"general\"}"),
        ("```json\n{\"topic\": \"a}b\"}\n```", "{\"topic\": \"a}b\"}"),
        ("Sure! {not json} then {\"x\": {\"y\": 1}} trailing", "{\"x\": {\"y\": 1}}"),
    ])
    func findsTheObject(text: String, object: String) throws {
        let data = try #require(JSONExtraction.firstObject(in: text))
        #expect(String(decoding: data, as: UTF8.self) == object)
    }

    @Test func nothingWithoutAnObject() {
        #expect(JSONExtraction.firstObject(in: "I cannot do that.") == nil)
        #expect(JSONExtraction.firstObject(in: "[1, 2]") == nil)
    }
}
