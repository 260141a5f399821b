import Foundation
import Synchronization
import SwitchboardCore
import Testing

@testable import APIServer

/// The idle checks of open turn streams, batched: many lookups in one window make one query.
@Suite struct MessageLookupsTests {
    static func message(_ id: Int64) -> Message {
        Message(
            id: id, chatID: 1, ownerID: 1, role: .user, content: "m\(id)", status: .completed, channel: .web,
            createdAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 0))
    }

    /// A window of a minute, so only the full batch (40 ids) can have answered: one query.
    @Test func lookupsOfOneBatchShareOneQuery() async throws {
        let queries = Mutex<[[Int64]]>([])
        let lookups = MessageLookups(window: .seconds(60), maxBatch: 40) { ids in
            queries.withLock { $0.append(ids.sorted()) }
            return ids.filter { $0 % 2 == 0 }.map(Self.message)
        }
        let found = try await withThrowingTaskGroup(of: (Int64, Message?).self) { group in
            for id in Int64(1)...40 {
                group.addTask { (id, try await lookups.message(id: id)) }
            }
            return try await group.reduce(into: [(Int64, Message?)]()) { $0.append($1) }
        }
        #expect(found.count == 40)
        for (id, message) in found {
            #expect(message?.id == (id % 2 == 0 ? id : nil))
        }
        #expect(queries.withLock { $0 } == [Array(Int64(1)...40)])
    }

    /// Two viewers of one turn asking in the same window: its id once in the query, both answered.
    @Test func aRepeatedIDIsAskedOnceAndAnsweredToEveryone() async throws {
        let queries = Mutex<[[Int64]]>([])
        let lookups = MessageLookups(window: .milliseconds(200)) { ids in
            queries.withLock { $0.append(ids) }
            return ids.map(Self.message)
        }
        async let a = lookups.message(id: 5)
        async let b = lookups.message(id: 5)
        async let c = lookups.message(id: 6)
        let answers = try await [a, b, c].map { $0?.id }
        #expect(answers == [5, 5, 6])
        #expect(queries.withLock { $0 }.allSatisfy { Set($0).count == $0.count })
    }

    @Test func aFailedQueryFailsItsLookupsAndTheNextWindowStartsAfresh() async throws {
        struct Down: Error {}
        let down = Mutex(true)
        let lookups = MessageLookups(window: .milliseconds(20), maxBatch: 5) { ids in
            if down.withLock({ $0 }) { throw Down() }
            return ids.map(Self.message)
        }
        await withTaskGroup(of: Bool.self) { group in
            for id in Int64(1)...5 {
                group.addTask { (try? await lookups.message(id: id)) == nil }
            }
            for await failed in group { #expect(failed) }
        }
        down.withLock { $0 = false }
        #expect(try await lookups.message(id: 7)?.id == 7)
    }
}
