import AIProviders
import Foundation

/// The real model server of `scripts/llm` (SmolLM2-135M for chat, all-MiniLM-L6-v2 for
/// embeddings), started once per test process: the script builds llama.cpp on first use and
/// reuses a server that already answers. `SB_TEST_LLM=0` turns the suites that need it off.
public enum LocalModelServer {
    public static let enabled = ProcessInfo.processInfo.environment["SB_TEST_LLM"] != "0"

    public struct Unavailable: Error, CustomStringConvertible {
        public var status: Int32
        public var description: String { "scripts/llm exited with status \(status)" }
    }

    private static let started = Task<String, any Error> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/llm")
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = await out.fileHandleForReading.readToEndOffPool()
        await process.waitForExit()
        guard process.terminationStatus == 0 else { throw Unavailable(status: process.terminationStatus) }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The OpenAI base URL (ends in /v1).
    public static func baseURL() async throws -> String { try await started.value }
}

extension LocalModelServer {
    /// Runs `body` with a provider for the server and shuts the provider down however `body` ends:
    /// a provider left running traps in its HTTP client's deinit, which would turn one failed call
    /// into a crash of the whole test process.
    public static func withProvider<T>(_ body: (OpenAICompatibleProvider) async throws -> T) async throws -> T {
        let provider = try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: try await baseURL()))
        let result: Result<T, any Error>
        do {
            result = .success(try await body(provider))
        } catch {
            result = .failure(error)
        }
        try await provider.shutdown()
        return try result.get()
    }
}
