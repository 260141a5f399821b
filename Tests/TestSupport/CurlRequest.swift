/// One HTTP request made by the real `curl` client, for tests that check what a listener answers
/// on a socket (status and body), without a Swift HTTP client of their own.
import Foundation

public struct CurlResponse: Sendable {
    public var status: Int
    public var body: String
}

public enum Curl {
    /// `method url` with `headers` and `body`; the status and body as curl saw them (status 0:
    /// no answer, e.g. nothing listens there).
    public static func request(
        _ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil
    ) async throws -> CurlResponse {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-S", "--max-time", "30", "-X", method, "-w", "\n%{http_code}", url]
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["--data-binary", body] }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = await output.fileHandleForReading.readToEndOffPool()
        await process.waitForExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.lastIndex(of: "\n") else { return CurlResponse(status: 0, body: text) }
        return CurlResponse(status: Int(text[text.index(after: split)...]) ?? 0, body: String(text[..<split]))
    }
}
