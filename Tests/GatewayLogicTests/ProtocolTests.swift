import Foundation
import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

/// The client protocol's vocabulary without a connection: the error and disconnect catalogues,
/// command decoding, reply and push encoding, control commands, the command rate.
@Suite struct ProtocolTests {
    func parse(_ text: String) -> JSONValue? {
        JSONValue.parse(Array(text.utf8))
    }

    func command(_ text: String) throws -> Command {
        try Command(json: #require(parse(text)))
    }

    @Test func errorsCarryCentrifugosCodes() {
        let catalogue: [(GatewayError, Int, String, Bool)] = [
            (.internal, 100, "internal server error", true), (.unauthorized, 101, "unauthorized", false),
            (.unknownChannel, 102, "unknown channel", false), (.permissionDenied, 103, "permission denied", false),
            (.methodNotFound, 104, "method not found", false), (.alreadySubscribed, 105, "already subscribed", false),
            (.limitExceeded, 106, "limit exceeded", false), (.badRequest, 107, "bad request", false),
            (.notAvailable, 108, "not available", false), (.tokenExpired, 109, "token expired", false),
            (.expired, 110, "expired", false), (.tooManyRequests, 111, "too many requests", true),
            (.unrecoverablePosition, 112, "unrecoverable position", false),
        ]
        for (error, code, message, temporary) in catalogue {
            #expect(error.code == code, "\(message)")
            #expect(error.message == message)
            #expect(error.temporary == temporary, "\(message)")
        }
    }

    @Test func anErrorReplyCarriesCodeMessageAndTemporary() {
        #expect(Reply.error(id: 7, .internal) == #"{"id":7,"error":{"code":100,"message":"internal server error","temporary":true}}"#)
        #expect(Reply.error(id: 8, .permissionDenied) == #"{"id":8,"error":{"code":103,"message":"permission denied"}}"#)
    }

    @Test func disconnectCodesTellTheSDKsWhetherToReconnect() {
        let reconnecting: [(Disconnect, Int)] = [
            (.connectionClosed, 3000), (.shutdown, 3001), (.internalError, 3004), (.expired, 3005), (.subExpired, 3006),
            (.slow, 3008), (.writeError, 3009), (.insufficientState, 3010), (.forceReconnect, 3011), (.noPong, 3012),
            (.tooManyRequests, 3013),
        ]
        let final: [(Disconnect, Int)] = [
            (.invalidToken, 3500), (.badRequest, 3501), (.messageTooLarge, 3501), (.stale, 3502), (.forceNoReconnect, 3503),
            (.connectionLimit, 3504), (.channelLimit, 3505), (.permissionDenied, 3507),
        ]
        for (disconnect, code) in reconnecting {
            #expect(disconnect.code == code && disconnect.reconnect, "\(disconnect.reason)")
        }
        for (disconnect, code) in final {
            #expect(disconnect.code == code && !disconnect.reconnect, "\(disconnect.reason)")
        }
        #expect(Disconnect.badRequest != Disconnect.messageTooLarge)
        #expect(!Disconnect(code: 4000, reason: "custom").reconnect)
        #expect(Disconnect(code: 5000, reason: "custom").reconnect)
        #expect(UnsubscribeCode.server == 2000)
        #expect(UnsubscribeCode.insufficient == 2500)
        #expect(UnsubscribeCode.expired == 2501)
    }

    @Test func decodesEveryCommand() throws {
        let connect = try command(
            #"{"id":1,"connect":{"token":"t","data":{"a":1},"name":"js","version":"1.0","subs":{"chat:a":{"recover":true,"offset":3,"epoch":"e"}}}}"#)
        #expect(connect.id == 1)
        #expect(connect.connect?.token == "t")
        #expect(connect.connect?.data?.serialized == #"{"a":1}"#)
        #expect(connect.connect?.name == "js" && connect.connect?.version == "1.0")
        let sub = try #require(connect.connect?.subs?["chat:a"])
        #expect(sub.recover == true && sub.offset == 3 && sub.epoch == "e")

        let subscribe = try #require(
            try command(
                #"{"id":2,"subscribe":{"channel":"chat:a","token":"s","recover":true,"epoch":"e","offset":5,"positioned":true,"recoverable":true,"join_leave":true,"flag":2,"data":[1]}}"#
            ).subscribe)
        #expect(subscribe.channel == "chat:a" && subscribe.token == "s" && subscribe.recover == true && subscribe.epoch == "e")
        #expect(subscribe.offset == 5 && subscribe.positioned == true && subscribe.recoverable == true && subscribe.join_leave == true)
        #expect(subscribe.flag == 2 && subscribe.data == .array([.int(1)]))

        let history = try #require(try command(#"{"id":3,"history":{"channel":"c","limit":-1,"since":{"offset":2,"epoch":"e"},"reverse":true}}"#).history)
        #expect(history.channel == "c" && history.limit == -1 && history.reverse == true)
        #expect(history.since?.offset == 2 && history.since?.epoch == "e")

        #expect(try command(#"{"id":4,"unsubscribe":{"channel":"c"}}"#).unsubscribe?.channel == "c")
        #expect(try command(#"{"id":5,"presence":{"channel":"c"}}"#).presence?.channel == "c")
        #expect(try command(#"{"id":6,"presence_stats":{"channel":"c"}}"#).presence_stats?.channel == "c")
        let publish = try command(#"{"id":7,"publish":{"channel":"c","data":"x"}}"#).publish
        #expect(publish?.channel == "c" && publish?.data == .string("x"))
        #expect(try command(#"{"id":8,"refresh":{"token":"t"}}"#).refresh?.token == "t")
        let subRefresh = try command(#"{"id":9,"sub_refresh":{"channel":"c","token":"t"}}"#).sub_refresh
        #expect(subRefresh?.channel == "c" && subRefresh?.token == "t")
        let rpc = try command(#"{"id":10,"rpc":{"method":"m","data":{"q":1}}}"#).rpc
        #expect(rpc?.method == "m" && rpc?.data?.serialized == #"{"q":1}"#)
        let send = try command(#"{"send":{"data":[true]}}"#)
        #expect(send.id == nil && send.send?.data == .array([.bool(true)]))
    }

    @Test func anEmptyCommandIsAPong() throws {
        #expect(try command("{}").isEmpty)
        #expect(try command(#"{"id":5}"#).isEmpty)
        #expect(try command(#"{"id":5,"unknown":{}}"#).isEmpty)
        #expect(try !command(#"{"id":1,"ping":{}}"#).isEmpty)
        #expect(try !command(#"{"send":{}}"#).isEmpty)
    }

    @Test func numbersMustBeExactIntegersInRangeAndNullIsAbsent() throws {
        #expect(try command(#"{"id":2.0,"subscribe":{"channel":"c","offset":4.0}}"#).subscribe?.offset == 4)
        #expect(try command(#"{"id":1,"subscribe":{"channel":"c","token":null,"recover":null}}"#).subscribe?.token == nil)
        for text in [
            #"{"id":4294967296}"#, #"{"id":1,"subscribe":{"channel":"c","offset":-1}}"#, #"{"id":1,"subscribe":{"channel":"c","offset":1.5}}"#,
            #"{"id":1,"subscribe":{"channel":"c","recover":"yes"}}"#, #"{"id":1,"connect":{"subs":{"c":5}}}"#,
            #"{"id":1,"history":{"channel":"c","since":[]}}"#, #"{"id":1,"refresh":{"token":1}}"#,
        ] {
            #expect(throws: MalformedCommand.self, "\(text)") { try command(text) }
        }
    }

    @Test func repliesAndPushesHaveTheProtocolsShape() {
        #expect(Reply.result(id: 3, method: "publish") { _ in } == #"{"id":3,"publish":{}}"#)
        let unsubscribe = Reply.push(channel: "chat:a", kind: "unsubscribe") { writer in
            writer.beginObject()
            writer.field("code", 2000)
            writer.field("reason", "server unsubscribe")
            writer.endObject()
        }
        #expect(unsubscribe == #"{"push":{"channel":"chat:a","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#)
        let publication = Publication(offset: 4, data: #"{"t":1}"#, info: ClientInfo(user: "u", client: "c1", connInfo: #"{"n":1}"#))
        #expect(
            Reply.publication(channel: "c", publication)
                == #"{"push":{"channel":"c","pub":{"data":{"t":1},"info":{"user":"u","client":"c1","conn_info":{"n":1}},"offset":4}}}"#)
        #expect(Reply.ping == "{}")
    }

    @Test func aPublicationSurvivesItsJSON() throws {
        let publication = Publication(data: #"[1,"x"]"#, info: ClientInfo(user: "u", client: "c", chanInfo: #"{"r":2}"#), tags: ["b": "2", "a": "1"])
        #expect(publication.json == #"{"data":[1,"x"],"info":{"user":"u","client":"c","chan_info":{"r":2}},"tags":{"a":"1","b":"2"}}"#)
        #expect(Publication(json: try #require(parse(publication.json))) == publication)
        #expect(Publication(json: try #require(parse(#"{"info":{"user":"u","client":"c"}}"#))) == nil)
        #expect(ClientInfo(json: try #require(parse(#"{"user":"u"}"#))) == nil)
    }

    @Test func controlCommandsCrossNodesAsJSON() throws {
        let commands = [
            ControlCommand(kind: .disconnect, user: "u", client: "c", code: 4000, reason: "bye"),
            ControlCommand(kind: .subscribe, user: "u", channel: "chat:a"),
            ControlCommand(kind: .unsubscribe, user: "", channel: "chat:\"b\""),
        ]
        for command in commands {
            #expect(ControlCommand(json: try #require(parse(command.json))) == command)
        }
        #expect(ControlCommand(json: try #require(parse(#"{"kind":"explode","user":"u"}"#))) == nil)
        #expect(ControlCommand(json: try #require(parse(#"{"kind":"disconnect"}"#))) == nil)
    }

    @Test func stringsAreEscapedInEveryMessage() throws {
        let text = "a\"b\\c\n\t\u{01}é😀"
        var quoted = ""
        JSONWriter.appendQuoted(text, to: &quoted)
        #expect(parse(quoted) == .string(text))
        let reply = Reply.error(id: 1, GatewayError(code: 4000, message: text))
        #expect(parse(reply)?["error"]?["message"] == .string(text))
    }

    @Test func theCommandAllowanceRefillsAtItsRateUpToTheBurst() {
        var allowance = CommandAllowance()
        let start = ContinuousClock.now
        for _ in 0..<5 {
            let taken = allowance.take(at: start, rate: 10, burst: 5)
            #expect(taken)
        }
        let take1 = allowance.take(at: start, rate: 10, burst: 5)
        #expect(!take1)
        // 150 ms at 10 per second: one more command (and half of the next).
        let take2 = allowance.take(at: start + .milliseconds(150), rate: 10, burst: 5)
        #expect(take2)
        let take3 = allowance.take(at: start + .milliseconds(150), rate: 10, burst: 5)
        #expect(!take3)
        // A long pause refills only up to the burst.
        for _ in 0..<5 {
            let taken = allowance.take(at: start + .seconds(60), rate: 10, burst: 5)
            #expect(taken)
        }
        let take4 = allowance.take(at: start + .seconds(60), rate: 10, burst: 5)
        #expect(!take4)
    }
}
