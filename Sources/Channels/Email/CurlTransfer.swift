/// libcurl for mail protocols (SMTP sends, IMAP reads). libcurl blocks, so every transfer runs on
/// a thread pool of its own (`CurlTransfer.threads`), never on the cooperative pool or an event
/// loop. A transfer keeps the server's responses (the debug stream's incoming lines) so a
/// failure can say what the server answered.
import CCurl
import Foundation
import NIOPosix

/// What a transfer needs beyond its URL.
public struct CurlOptions: Sendable {
    public var username: String?
    public var password: String?
    /// `smtp://` / `imap://`: STARTTLS required (true) or tried (false).
    public var requireTLS: Bool
    /// Extra CA certificates to trust (PEM), e.g. a private relay's.
    public var caFile: String?
    public var connectTimeout: Int
    public var timeout: Int

    public init(username: String? = nil, password: String? = nil, requireTLS: Bool = true, caFile: String? = nil, connectTimeout: Int = 10, timeout: Int = 60) {
        self.username = username
        self.password = password
        self.requireTLS = requireTLS
        self.caFile = caFile
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }
}

/// How a libcurl transfer ended badly.
public struct CurlFailure: Error, Sendable, CustomStringConvertible {
    /// libcurl's result code.
    public var code: Int
    /// The last protocol reply code (SMTP 250/451/550…), 0 when none arrived.
    public var responseCode: Int
    /// libcurl's message.
    public var message: String
    /// The last lines the server sent.
    public var serverReply: String

    public init(code: Int, responseCode: Int, message: String, serverReply: String) {
        self.code = code
        self.responseCode = responseCode
        self.message = message
        self.serverReply = serverReply
    }

    /// The server's TLS certificate is not signed by a trusted CA (or the CA file cannot be read).
    public var isUntrustedCertificate: Bool { code == 60 || code == 77 }

    public var description: String {
        let failure = serverReply.isEmpty ? "libcurl error \(code): \(message)" : "libcurl error \(code): \(message); the server said: \(serverReply)"
        guard isUntrustedCertificate else { return failure }
        return "the server's TLS certificate is not trusted (channels.email_ca_file names the CA certificates trusted besides the system's): \(failure)"
    }
}

/// What a transfer brought back.
struct CurlResult: Sendable {
    /// What the write callback received (an IMAP custom command's untagged lines; a fetched message).
    var body: [UInt8]
    var serverLines: [String]
    var transcript: [UInt8]
}

final class CurlTransferState: @unchecked Sendable {
    // Touched only by the one thread running the transfer.
    var upload: [UInt8] = []
    var uploadOffset = 0
    var download: [UInt8] = []
    var serverLines: [String] = []
    /// Everything the server sent on the control connection, byte for byte (IMAP literals included).
    var transcript: [UInt8] = []
    var maxDownload = 64 << 20
    /// Lists handed to libcurl (recipients), freed after the transfer.
    var lists: [UnsafeMutablePointer<curl_slist>] = []

    func keep(_ list: UnsafeMutablePointer<curl_slist>?) { if let list { lists.append(list) } }
}

public enum CurlTransfer {
    /// libcurl's global initialisation, once, before any transfer.
    // 3 is CURL_GLOBAL_ALL (CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32), a macro Swift does not import.
    static let initialized: Bool = { curl_global_init(3) == CURLE_OK }()

    /// The threads libcurl blocks on.
    static let threads: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()

    /// One transfer: `configure` sets its protocol options on the handle. Returns what was
    /// downloaded and the server's responses.
    static func perform(
        url: String, options: CurlOptions, upload: [UInt8]? = nil, configure: @escaping @Sendable (UnsafeMutableRawPointer, CurlTransferState) -> Void = { _, _ in }
    ) async throws -> CurlResult {
        _ = initialized
        return try await threads.runIfActive {
            try performBlocking(url: url, options: options, upload: upload, configure: configure)
        }
    }

    static func performBlocking(
        url: String, options: CurlOptions, upload: [UInt8]?, configure: (UnsafeMutableRawPointer, CurlTransferState) -> Void
    ) throws -> CurlResult {
        guard let handle = curl_easy_init() else { throw CurlFailure(code: -1, responseCode: 0, message: "curl_easy_init failed", serverReply: "") }
        defer { curl_easy_cleanup(handle) }
        let state = CurlTransferState()
        defer { for list in state.lists { curl_slist_free_all(list) } }
        let userdata = Unmanaged.passUnretained(state).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let result: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errors in
            sb_curl_setopt_string(handle, CURLOPT_URL, url)
            sb_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            sb_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
            sb_curl_setopt_long(handle, CURLOPT_TIMEOUT, options.timeout)
            sb_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress)
            if let username = options.username { sb_curl_setopt_string(handle, CURLOPT_USERNAME, username) }
            if let password = options.password { sb_curl_setopt_string(handle, CURLOPT_PASSWORD, password) }
            let useSSL = options.requireTLS ? CURLUSESSL_ALL : CURLUSESSL_TRY
            sb_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue))
            if let caFile = options.caFile { sb_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
            // The server's responses, kept for error messages (and IMAP literals).
            sb_curl_setopt_long(handle, CURLOPT_VERBOSE, 1)
            sb_curl_setopt_debug_callback(handle) { _, type, data, size, userdata in
                guard let userdata, let data, type == CURLINFO_HEADER_IN else { return 0 }
                let state = Unmanaged<CurlTransferState>.fromOpaque(userdata).takeUnretainedValue()
                let bytes = UnsafeRawBufferPointer(start: data, count: size)
                state.serverLines.append(String(decoding: bytes.prefix(512), as: UTF8.self))
                if state.serverLines.count > 200 { state.serverLines.removeFirst(100) }
                if state.transcript.count + size <= state.maxDownload { state.transcript.append(contentsOf: bytes) }
                return 0
            }
            sb_curl_setopt_pointer(handle, CURLOPT_DEBUGDATA, userdata)
            sb_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { buffer, size, count, userdata in
                guard let userdata, let buffer else { return 0 }
                let state = Unmanaged<CurlTransferState>.fromOpaque(userdata).takeUnretainedValue()
                let length = size * count
                if state.download.count + length > state.maxDownload { return 0 }
                state.download.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
                return length
            }
            sb_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, userdata)
            if let upload {
                state.upload = upload
                sb_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                sb_curl_setopt_long(handle, CURLOPT_INFILESIZE, upload.count)
                sb_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION) { buffer, size, count, userdata in
                    guard let userdata, let buffer else { return 0 }
                    let state = Unmanaged<CurlTransferState>.fromOpaque(userdata).takeUnretainedValue()
                    let length = min(size * count, state.upload.count - state.uploadOffset)
                    guard length > 0 else { return 0 }
                    state.upload.withUnsafeBytes { source in
                        UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + state.uploadOffset, byteCount: length)
                    }
                    state.uploadOffset += length
                    return length
                }
                sb_curl_setopt_pointer(handle, CURLOPT_READDATA, userdata)
            }
            configure(handle, state)
            return curl_easy_perform(handle)
        }
        guard result == CURLE_OK else {
            var response = 0
            sb_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &response)
            let written = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let message = written.isEmpty ? String(cString: curl_easy_strerror(result)) : written
            // The server's refusal, not what came after it (a QUIT's 221): the last 4xx or 5xx line.
            let lines = state.serverLines.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            let refusal = lines.last { line in
                let code = line.prefix(3)
                return code.count == 3 && code.allSatisfy(\.isNumber) && (code.first == "4" || code.first == "5")
            }
            if let refusal, let code = Int(refusal.prefix(3)) { response = code }
            throw CurlFailure(code: Int(result.rawValue), responseCode: response, message: message, serverReply: refusal ?? lines.last ?? "")
        }
        return CurlResult(body: state.download, serverLines: state.serverLines, transcript: state.transcript)
    }
}
