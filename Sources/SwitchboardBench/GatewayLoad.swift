import Foundation
import Gateway
import Logging
import NIOCore
import RedisClient
import ServiceLifecycle
import UnixSignals

/// `switchboard-bench gateway serve|idle|fanout|throughput`: a development server for the interop
/// tests and the load generators behind scripts/bench/gateway.sh.
enum GatewayLoad {
    static func run(_ arguments: [String]) async throws {
        guard let mode = arguments.first else { throw GatewayLoadError.usage }
        let options = Options(Array(arguments.dropFirst()))
        switch mode {
        case "serve": try await serve(options)
        case "idle": try await GatewayBench.idle(options)
        case "fanout": try await GatewayBench.fanout(options)
        case "throughput": try await GatewayBench.throughput(options)
        default: throw GatewayLoadError.usage
        }
    }

    /// Runs a gateway: `--port P --host H --redis URL --config JSON` (JSON is the `gateway:` section;
    /// also read from SB_GATEWAY_CONFIG_JSON, SB_REDIS_URL and the SB_GATEWAY_* overrides).
    static func serve(_ options: Options) async throws {
        var configuration = GatewayConfiguration()
        if let json = options["config"] ?? ProcessInfo.processInfo.environment["SB_GATEWAY_CONFIG_JSON"], !json.isEmpty {
            configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data(json.utf8))
        }
        configuration.applyEnvironment()
        if let port = options["port"].flatMap(Int.init) { configuration.port = port }
        if let host = options["host"] { configuration.host = host }
        var logger = Logger(label: "gateway")
        logger.logLevel = options["log-level"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var redis: RedisClient?
        if let url = options["redis"] ?? ProcessInfo.processInfo.environment["SB_REDIS_URL"], !url.isEmpty {
            redis = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
        }
        if let encoded = try? JSONEncoder().encode(configuration) {
            logger.debug("configuration", metadata: ["json": "\(String(decoding: encoded, as: UTF8.self))"])
        }
        let server = GatewayServer(configuration: configuration, redis: redis, logger: logger)
        let group = ServiceGroup(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        let port = configuration.port
        FileHandle.standardOutput.write(Data("gateway starting on port \(port)\n".utf8))
        try await group.run()
        await redis?.close()
    }
}

enum GatewayLoadError: Error, CustomStringConvertible {
    case usage
    case failed(String)

    var description: String {
        switch self {
        case .usage:
            "usage: switchboard-bench gateway serve|idle|fanout|throughput [--port P] [--redis URL] [--config JSON] ..."
        case .failed(let reason): reason
        }
    }
}

/// `--name value` pairs.
struct Options {
    private var values: [String: String] = [:]

    init(_ arguments: [String]) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument.hasPrefix("--") {
                let name = String(argument.dropFirst(2))
                if index + 1 < arguments.count, !arguments[index + 1].hasPrefix("--") {
                    values[name] = arguments[index + 1]
                    index += 2
                    continue
                }
                values[name] = "true"
            }
            index += 1
        }
    }

    subscript(name: String) -> String? { values[name] }

    func int(_ name: String, _ fallback: Int) -> Int { values[name].flatMap(Int.init) ?? fallback }
}

enum GatewayBench {
    static func idle(_ options: Options) async throws { throw GatewayLoadError.failed("not yet") }
    static func fanout(_ options: Options) async throws { throw GatewayLoadError.failed("not yet") }
    static func throughput(_ options: Options) async throws { throw GatewayLoadError.failed("not yet") }
}
