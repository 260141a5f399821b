import Logging
import ServiceLifecycle

/// Runs `body` every `interval` until the process shuts down. A failed run is logged and the next
/// period tries again: periodic housekeeping must not take the role down with it.
struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let body: @Sendable (Logger) async throws -> Void

    func run() async throws {
        var logger = logger
        logger[metadataKey: "task"] = "\(name)"
        let log = logger
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await body(log)
                } catch is CancellationError {
                    return
                } catch {
                    log.warning("periodic task failed; trying again next period", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
