@testable import Gateway
import Synchronization
import Testing

/// The node's reference counts of broker subscriptions: one broker subscribe for many local
/// subscribers, one unsubscribe when the last leaves, calls on one channel in order, and a failed
/// subscribe counted out.
@Suite("Broker subscriptions")
struct BrokerSubscriptionsTests {
    /// A broker that records subscribe/unsubscribe calls; a subscribe can be held open or made
    /// to fail. Everything else is an in-memory broker's.
    final class RecordingBroker: Broker {
        struct State {
            var calls: [String] = []
            var subscribed: Set<String> = []
            var failNextSubscribe = false
            var held: [CheckedContinuation<Void, Never>] = []
            var hold = false
        }
        let state = Mutex(State())
        let memory = MemoryBroker()

        func start(handler: any BrokerEventHandler) async throws { try await memory.start(handler: handler) }
        func stop() async { await memory.stop() }
        func subscribe(_ channel: String) async throws {
            let hold = state.withLock { $0.calls.append("+\(channel)"); return $0.hold }
            if hold {
                await withCheckedContinuation { continuation in state.withLock { $0.held.append(continuation) } }
            }
            try state.withLock { state in
                if state.failNextSubscribe {
                    state.failNextSubscribe = false
                    throw GatewayError.internal
                }
                state.subscribed.insert(channel)
            }
        }
        func unsubscribe(_ channel: String) async throws {
            _ = state.withLock { $0.calls.append("-\(channel)"); return $0.subscribed.remove(channel) }
        }
        func startPublish(
            channel: String, publication: Publication, options: PublishOptions,
            completion: @escaping @Sendable (Result<StreamPosition, any Error>) -> Void
        ) { memory.startPublish(channel: channel, publication: publication, options: options, completion: completion) }
        func publishJoin(channel: String, info: ClientInfo) async throws {}
        func publishLeave(channel: String, info: ClientInfo) async throws {}
        func publishControl(_ command: ControlCommand) async throws {}
        func history(channel: String, query: HistoryQuery) async throws -> HistoryResult {
            try await memory.history(channel: channel, query: query)
        }
        func removeHistory(channel: String) async throws {}

        /// Lets every held subscribe go on, once `count` of them are waiting.
        func releaseHeld(count: Int) async {
            while state.withLock({ $0.held.count }) < count { await Task.yield() }
            let held = state.withLock { state in
                state.hold = false
                defer { state.held = [] }
                return state.held
            }
            held.forEach { $0.resume() }
        }
    }

    @Test func manySubscribersOneBrokerSubscribeAndOneUnsubscribeAfterTheLast() async throws {
        let broker = RecordingBroker()
        let subscriptions = BrokerSubscriptions(broker: broker)
        broker.state.withLock { $0.hold = true }
        // Ten arrive while the first subscribe is still under way: they wait for it, then count in.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { try await subscriptions.acquire("news") } }
            await broker.releaseHeld(count: 1)
            try await group.waitForAll()
        }
        #expect(broker.state.withLock { $0.calls } == ["+news"])
        #expect(subscriptions.count("news") == 10)
        for _ in 0..<9 { await subscriptions.release("news") }
        #expect(broker.state.withLock { $0.calls } == ["+news"])
        await subscriptions.release("news")
        #expect(broker.state.withLock { ($0.calls, $0.subscribed) } == (["+news", "-news"], []))
        #expect(subscriptions.count("news") == 0)
    }

    /// Leave and rejoin in quick succession: the calls reach the broker in order, so the channel
    /// ends subscribed.
    @Test func aQuickLeaveAndRejoinEndsSubscribed() async throws {
        let broker = RecordingBroker()
        let subscriptions = BrokerSubscriptions(broker: broker)
        for round in 0..<50 {
            try await subscriptions.acquire("c\(round)")
            async let left: Void = subscriptions.release("c\(round)")
            async let rejoined: Void = subscriptions.acquire("c\(round)")
            await left
            try await rejoined
            #expect(broker.state.withLock { $0.subscribed.contains("c\(round)") }, "round \(round)")
            #expect(subscriptions.count("c\(round)") == 1)
        }
    }

    @Test func aFailedSubscribeIsNotCountedAndTheNextOneTriesAgain() async throws {
        let broker = RecordingBroker()
        let subscriptions = BrokerSubscriptions(broker: broker)
        broker.state.withLock { $0.failNextSubscribe = true }
        await #expect(throws: GatewayError.self) { try await subscriptions.acquire("news") }
        #expect(subscriptions.count("news") == 0)
        try await subscriptions.acquire("news")
        #expect(subscriptions.count("news") == 1)
        #expect(broker.state.withLock { ($0.calls, $0.subscribed) } == (["+news", "+news"], ["news"]))
    }
}
