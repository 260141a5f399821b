import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

@Suite struct JSONParserTests {
    func parse(_ text: String) -> JSONValue? {
        JSONValue.parse(Array(text.utf8))
    }

    @Test func parsesEveryKindOfValue() throws {
        let value = try #require(parse(#" {"a":[1,-2,3.5,1e3,true,false,null],"b":{"c":"d"},"e":""} "#))
        #expect(value["a"] == .array([.int(1), .int(-2), .double(3.5), .double(1000), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("d"))
        #expect(value["e"] == .string(""))
        #expect(parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
    }

    @Test func decodesEscapesAndSurrogatePairs() {
        #expect(parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#) == .string("a\"b\\c/d\n\té😀"))
        #expect(parse(#""é literal""#) == .string("é literal"))
    }

    @Test(arguments: [
        "", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "nul", "\"unterminated",
        "\"\\x\"", "\"\\ud83d\"", "\"\\ude00\"", "{} {}", "[1] x", "{'a':1}", "\"tab\there\"",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(parse(text) == nil)
    }

    @Test func rejectsNestingBeyondTheLimit() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(parse(deep) == nil)
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(parse(fine) != nil)
    }

    @Test func commandsOfTheWrongShapeAreMalformed() throws {
        let publish = try Command(json: #require(parse(#"{"id":3,"publish":{"channel":"chat:a","data":{"x":[1]}}}"#)))
        #expect(publish.id == 3)
        #expect(publish.publish?.channel == "chat:a")
        #expect(publish.publish?.data?.serialized == #"{"x":[1]}"#)
        #expect(try Command(json: #require(parse(#"{"id":1,"ping":{}}"#))).ping != nil)
        #expect(try Command(json: #require(parse(#"{"id":null}"#))).isEmpty)
        for text in [#"{"id":"1"}"#, #"{"id":-1}"#, #"{"id":1.5}"#, #"{"id":1,"subscribe":{"channel":5}}"#, #"{"id":1,"publish":[]}"#, "[]"] {
            #expect(throws: MalformedCommand.self) { try Command(json: #require(parse(text))) }
        }
    }

    @Test(arguments: [UInt64(0), 7])
    func aPublicationRelayedEncodedMatchesTheLocallyEncodedPush(_ offset: UInt64) throws {
        let publication = Publication(
            offset: offset, data: #"{"text":"hi \"there\""}"#, info: ClientInfo(user: "u1", client: "c1"), tags: ["k": "v"])
        var withoutOffset = publication
        withoutOffset.offset = 0
        let relayed = try #require(Reply.encodedPublication(channel: "chat:\"a\"", offset: offset, json: ArraySlice(withoutOffset.json.utf8)))
        let local = Reply.publication(channel: "chat:\"a\"", publication)
        #expect(parse(String(buffer: relayed.payload)) == parse(local))
        #expect(Reply.encodedPublication(channel: "a", offset: 1, json: ArraySlice("[1]".utf8)) == nil)
    }
}
