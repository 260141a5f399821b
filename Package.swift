// swift-tools-version:6.2
import PackageDescription

/// Every target builds in the Swift 6 language mode (strict concurrency checking) with the same flags.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        // OTLP traces: only the OTLP/HTTP (protobuf) exporter trait, no gRPC.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-service-context.git", from: "1.5.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // C libraries from Debian's -dev packages.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        // RE2 (Debian's libre2-dev) behind a small C face, for routing rules.
        .target(
            name: "CRE2",
            path: "Sources/CRE2",
            linkerSettings: [.linkedLibrary("re2")]
        ),
        // accept4 and pipe2, which Glibc's Swift module leaves out, for the gateway's accept loop.
        .target(name: "CSocket", path: "Sources/CSocket"),
        .target(
            name: "SwitchboardCore",
            dependencies: ["CRE2"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchboardConfig",
            dependencies: ["SwitchboardCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Observability",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Storage",
            dependencies: [
                "CMariaDB",
                "SwitchboardCore",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Queue",
            dependencies: [
                "RedisClient",
                "SwitchboardCore",
                "Observability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The realtime engine's format (keys, publish script), channels of live support, tokens and
        // publishers: shared by the gateway and by the api and workers that publish into it.
        .target(
            name: "Realtime",
            dependencies: [
                "RedisClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The realtime gateway depends on no Switchboard module but the Redis client, Observability and Realtime.
        .target(
            name: "Gateway",
            dependencies: [
                "RedisClient", "SwitchboardCore",
                "Observability",
                "Realtime",
                "CSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // AI providers behind one protocol: streaming chat, JSON chat, embeddings.
        .target(
            name: "AIProviders",
            dependencies: [
                "SwitchboardCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The routing pipeline run on workers (extract, classify, plan, execute) and the jobs around it (turn, extract).
        .target(
            name: "Pipeline",
            dependencies: [
                "AIProviders", "Channels", "Queue", "RedisClient", "Storage", "SwitchboardCore", "Turns", "Files",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // Uploaded files: storing one (bytes → disk → row → `extract` job), chunking and embedding on the
        // `index` queue, the per-owner in-process vector index and search.
        .target(
            name: "Files",
            dependencies: [
                "AIProviders", "Queue", "RedisClient", "Storage", "SwitchboardCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the api and workers share about a turn: its events, its Redis stream, how it ends, its stop flag, the `turn` job.
        .target(
            name: "Turns",
            dependencies: [
                "RedisClient", "Queue", "SwitchboardCore", "Observability",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // Email as bytes: RFC 5322 / MIME parsing and the replies Switchboard composes (no server dependencies).
        .target(name: "Mail", dependencies: ["SwitchboardCore"], swiftSettings: swiftSettings),
        // The channel seam: inbound adapters into one intake, outbound deliverers, the `deliver_reply` job.
        .target(
            name: "Channels",
            dependencies: [
                "RedisClient", "Storage", "Queue", "Turns", "SwitchboardCore", "Realtime", "Mail", "CCurl", "Files",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // The public REST/SSE API of the api role.
        .target(
            name: "APIServer",
            dependencies: [
                "RedisClient", "Storage", "Queue", "Turns", "Channels", "SwitchboardCore", "Observability", "Realtime", "Files", "AIProviders",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchboardApp",
            dependencies: [
                "SwitchboardCore", "SwitchboardConfig", "Observability", "RedisClient", "Storage", "Queue", "Gateway",
                "Turns", "Channels", "APIServer", "AIProviders", "Pipeline", "Realtime", "Files",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "SwitchboardApp", "SwitchboardConfig", "SwitchboardCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Load generators and harnesses behind scripts/bench/ (and the worker harness that queue tests drive).
        .executableTarget(
            name: "switchboard-bench",
            dependencies: [
                "CHiredis", "CSocket", "RedisClient", "Storage", "Queue", "QueueTestJobs", "Gateway", "SwitchboardCore",
                "SwitchboardApp", "APIServer", "Channels", "Pipeline", "AIProviders", "Turns", "Files", "Mail", "Observability",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/SwitchboardBench",
            swiftSettings: swiftSettings
        ),

        // What the test targets share about the real Redis and MariaDB they run against.
        .target(
            name: "TestSupport",
            dependencies: ["AIProviders", "RedisClient", "Storage", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        // What the tests of turns share: per-test Redis and MariaDB, and a deterministic responder.
        .target(
            name: "TurnTestSupport",
            dependencies: [
                "AIProviders", "Pipeline", "Queue", "RedisClient", "Storage", "SwitchboardCore", "TestSupport", "Turns",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TurnTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient", "TestSupport", .product(name: "NIOCore", package: "swift-nio")], swiftSettings: swiftSettings),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "SwitchboardCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SwitchboardConfigLogicTests", dependencies: ["SwitchboardConfig"], swiftSettings: swiftSettings),
        // The gateway's logic without servers (protocol, tokens, channel rules, the client over the
        // memory engine, the HTTP API in process): runs in seconds, needs no Redis.
        .testTarget(
            name: "GatewayLogicTests",
            dependencies: [
                "CSocket", "Gateway", "Realtime", "SwitchboardCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The gateway's Redis engine against a real Redis (SB_TEST_REDIS_URL).
        // Diagnostic jobs (they record their runs in Redis) for the queue tests and the benchmark harness.
        .target(
            name: "QueueTestJobs",
            dependencies: ["Queue", "RedisClient"],
            path: "Tests/QueueTestJobs",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QueueTests",
            dependencies: ["Queue", "QueueTestJobs", "RedisClient", "SwitchboardCore", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        // The worker runtime's logic on the in-memory driver: no server needed.
        .testTarget(name: "QueueLogicTests", dependencies: ["Queue", "SwitchboardCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "Realtime", "RedisClient", "TestSupport", "SwitchboardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AIProvidersTests", dependencies: ["AIProviders", "SwitchboardCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PipelineTests",
            dependencies: [
                "Pipeline", "AIProviders", "Channels", "Queue", "RedisClient", "Storage", "SwitchboardCore", "TestSupport",
                "TurnTestSupport", "Turns",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TurnsTests",
            dependencies: ["Turns", "RedisClient", "TestSupport", "TurnTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "APIServerTests",
            dependencies: [
                "APIServer", "Channels", "Files", "Mail", "Turns", "Realtime", "RedisClient", "Storage", "Queue", "Pipeline", "SwitchboardCore", "TestSupport", "TurnTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardAppTests",
            dependencies: [
                "SwitchboardApp", "APIServer", "Queue", "Storage", "RedisClient", "SwitchboardConfig", "SwitchboardCore",
                "Turns", "Pipeline", "AIProviders", "TestSupport", "Files", "Channels",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // Logic tests: no server, seconds to run (`./scripts/test --fast`). Their targets end in `LogicTests`.
        .testTarget(
            name: "RedisClientLogicTests",
            dependencies: ["RedisClient", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: swiftSettings),
        .testTarget(name: "StorageLogicTests", dependencies: ["Storage"], swiftSettings: swiftSettings),
        .testTarget(name: "AIProvidersLogicTests", dependencies: ["AIProviders"], swiftSettings: swiftSettings),
        .testTarget(name: "SwitchboardCoreLogicTests", dependencies: ["SwitchboardCore"], swiftSettings: swiftSettings),
        .testTarget(name: "TurnsLogicTests", dependencies: ["Turns", "SwitchboardCore", "RedisClient"], swiftSettings: swiftSettings),
        .testTarget(name: "ChannelsLogicTests", dependencies: ["Channels", "Mail", "Storage", "SwitchboardCore"], swiftSettings: swiftSettings),
        .testTarget(name: "MailLogicTests", dependencies: ["Mail"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PipelineLogicTests",
            dependencies: ["Pipeline", "AIProviders", "Turns", "TurnTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "APIServerLogicTests",
            dependencies: [
                "APIServer", "Channels", "SwitchboardCore", "Storage", "RedisClient", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardAppLogicTests",
            dependencies: ["SwitchboardApp", "APIServer", "Gateway", "SwitchboardConfig", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ObservabilityLogicTests",
            dependencies: [
                "Observability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceContextModule", package: "swift-service-context"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "FilesLogicTests", dependencies: ["Files", "Storage", "SwitchboardCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "FilesTests",
            dependencies: [
                "Files", "APIServer", "Pipeline", "AIProviders", "Queue", "RedisClient", "Storage", "SwitchboardCore", "TestSupport",
                "Turns", "SwitchboardApp",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ChannelsTests",
            dependencies: ["Channels", "Queue", "RedisClient", "Storage", "SwitchboardCore", "TurnTestSupport", "Turns"],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer targets (Fuzz/, docs/fuzzing.md): declared only when SB_FUZZ is set, so the normal
// build, its tests and the module graph check never see them. scripts/fuzz builds them with
// `--sanitize fuzzer` into their own build folder (.build/fuzz) and runs them over Fuzz/corpus.
if Context.environment["SB_FUZZ"] != nil {
    let fuzzTargets: [(name: String, path: String, dependencies: [Target.Dependency])] = [
        ("fuzz-gateway-commands", "Fuzz/GatewayCommands", []),
        ("fuzz-server-sent-events", "Fuzz/ServerSentEvents", []),
        ("fuzz-configuration", "Fuzz/Configuration", ["SwitchboardConfig"]),
        ("fuzz-mime", "Fuzz/MIME", ["Mail"]),
        ("fuzz-websocket-handshake", "Fuzz/WebSocketHandshake", [.product(name: "Crypto", package: "swift-crypto")]),
        ("fuzz-websocket-frames", "Fuzz/WebSocketFrames", [.product(name: "NIOCore", package: "swift-nio")]),
        (
            "fuzz-multipart", "Fuzz/Multipart",
            [.product(name: "MultipartKit", package: "multipart-kit"), .product(name: "NIOCore", package: "swift-nio")]
        ),
    ]
    for target in fuzzTargets {
        package.targets.append(
            .executableTarget(
                name: target.name, dependencies: target.dependencies, path: target.path,
                swiftSettings: swiftSettings + [.define("FUZZ_TARGET"), .unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: target.name, targets: [target.name]))
    }
}
