import Foundation
import SwitchboardCore
import Logging
import NIOPosix
import ZIPFoundation

/// The kinds of document Switchboard reads.
public enum DocumentKind: String, Sendable, Hashable, CaseIterable {
    case plainText = "text"
    case markdown
    case html
    case pdf
    case docx

    /// Decided by content where it tells (PDF and ZIP magic numbers), then by MIME type, then by file extension.
    public static func detect(name: String, mimeType: String, prefix: some Collection<UInt8>) -> DocumentKind? {
        let head = Array(prefix.prefix(8))
        let mime = mimeType.lowercased().split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let ext = (name as NSString).pathExtension.lowercased()
        if head.starts(with: Array("%PDF-".utf8)) { return .pdf }
        if mime == "application/pdf" || ext == "pdf" { return .pdf }
        if mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document" || ext == "docx" { return .docx }
        if mime == "text/html" || mime == "application/xhtml+xml" || ["html", "htm", "xhtml"].contains(ext) { return .html }
        if mime == "text/markdown" || mime == "text/x-markdown" || ["md", "markdown"].contains(ext) { return .markdown }
        if mime.hasPrefix("text/") || ["txt", "text", "csv", "log", "json", "xml", "yaml", "yml"].contains(ext) { return .plainText }
        return nil
    }
}

/// Why a file has no text.
public typealias ExtractionError = CodedError<ExtractionFailure>

/// The kind of `ExtractionError`s.
public enum ExtractionFailure {}

extension ErrorCode where Kind == ExtractionFailure {
    public static var unsupported: Self { "unsupported_file" }
    public static var corrupt: Self { "corrupt_file" }
    public static var tooLarge: Self { "file_too_large" }
    public static var unreadable: Self { "file_unreadable" }
    /// A helper program (pdftotext, unzip) is missing or failed to start.
    public static var toolUnavailable: Self { "extractor_unavailable" }
}

/// Turns a document into plain text. Blocking work (files, helper processes) runs on an
/// `NIOThreadPool`, never on the cooperative pool.
public struct TextExtractor: Sendable {
    /// Largest input read; bigger files are refused.
    public var maximumInputBytes: Int
    /// Longest text kept; the rest is cut (models could not read more anyway).
    public var maximumTextCharacters: Int
    public var helperTimeout: Duration
    /// Most bytes a DOCX's `word/document.xml` may unpack to (a ZIP bomb stops here).
    public var maximumUnpackedBytes: Int
    private let threadPool: NIOThreadPool

    public init(
        maximumInputBytes: Int = 50 << 20, maximumTextCharacters: Int = 2_000_000, helperTimeout: Duration = .seconds(60),
        maximumUnpackedBytes: Int = 64 << 20, threadPool: NIOThreadPool = .singleton
    ) {
        self.maximumInputBytes = maximumInputBytes
        self.maximumTextCharacters = maximumTextCharacters
        self.helperTimeout = helperTimeout
        self.maximumUnpackedBytes = maximumUnpackedBytes
        self.threadPool = threadPool
    }

    /// Extracts the text of the file at `path`.
    public func extract(path: String, name: String? = nil, mimeType: String) async throws -> String {
        let limit = maximumInputBytes
        let data: Data = try await threadPool.runIfActive {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
                throw ExtractionError(.unreadable, "cannot read the file")
            }
            if let size = attributes[.size] as? Int, size > limit {
                throw ExtractionError(.tooLarge, "the file has \(size) bytes; at most \(limit) are read")
            }
            guard let data = FileManager.default.contents(atPath: path) else { throw ExtractionError(.unreadable, "cannot read the file") }
            return data
        }
        return try await extract(data: data, name: name ?? (path as NSString).lastPathComponent, mimeType: mimeType)
    }

    /// Extracts the text of a document held in memory.
    public func extract(data: Data, name: String, mimeType: String) async throws -> String {
        guard data.count <= maximumInputBytes else {
            throw ExtractionError(.tooLarge, "the file has \(data.count) bytes; at most \(maximumInputBytes) are read")
        }
        guard let kind = DocumentKind.detect(name: name, mimeType: mimeType, prefix: data.prefix(8)) else {
            throw ExtractionError(.unsupported, "'\(name)' (\(mimeType)) is not a supported document: text, Markdown, HTML, PDF or DOCX")
        }
        let text: String
        switch kind {
        case .plainText, .markdown:
            text = try Self.decodeText(data)
        case .html:
            text = HTMLText.plainText(try Self.decodeText(data))
        case .pdf:
            guard data.starts(with: Array("%PDF-".utf8)) else { throw ExtractionError(.corrupt, "'\(name)' is not a PDF file") }
            text = try await runHelper(["pdftotext", "-enc", "UTF-8", "-q", "{file}", "-"], input: data, suffix: ".pdf", what: "PDF")
        case .docx:
            guard data.starts(with: [0x50, 0x4B, 0x03, 0x04]) else { throw ExtractionError(.corrupt, "'\(name)' is not a DOCX (ZIP) file") }
            let limit = maximumUnpackedBytes
            let xml = try await threadPool.runIfActive { try DOCXArchive.documentXML(data, name: name, maximumBytes: limit) }
            guard xml.contains("<w:body") else { throw ExtractionError(.corrupt, "'\(name)' has no Word document body") }
            text = DOCXText.plainText(fromDocumentXML: xml)
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.count > maximumTextCharacters ? String(trimmed.prefix(maximumTextCharacters)) : trimmed
    }

    static func decodeText(_ data: Data) throws -> String {
        if data.prefix(4096).contains(0) { throw ExtractionError(.corrupt, "binary content where text was expected") }
        var bytes = data
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        if let text = String(data: bytes, encoding: .utf8) { return text }
        // Not UTF-8: Windows-1252 covers what old Western files use.
        if let text = String(data: bytes, encoding: .windowsCP1252) { return text }
        throw ExtractionError(.corrupt, "the text is neither UTF-8 nor Windows-1252")
    }

    /// Writes `input` to a temporary file and runs a helper on it (`{file}` in `arguments`), collecting stdout.
    private func runHelper(_ arguments: [String], input: Data, suffix: String, what: String) async throws -> String {
        let timeout = helperTimeout
        let outputLimit = maximumTextCharacters * 4
        return try await threadPool.runIfActive {
            let path = NSTemporaryDirectory() + "switchboard-extract-" + UUID().uuidString + suffix
            guard FileManager.default.createFile(atPath: path, contents: input) else {
                throw ExtractionError(.unreadable, "cannot write a temporary file")
            }
            defer { try? FileManager.default.removeItem(atPath: path) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments.map { $0 == "{file}" ? path : $0 }
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                throw ExtractionError(.toolUnavailable, "cannot start \(arguments[0]): \(error)")
            }
            let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000)), execute: killer)
            // At most `outputLimit` bytes are kept; a helper writing more is stopped.
            var data = Data()
            let reader = output.fileHandleForReading
            while true {
                let piece = reader.availableData
                if piece.isEmpty { break }
                data.append(piece)
                if data.count > outputLimit {
                    data = data.prefix(outputLimit)
                    if process.isRunning { process.terminate() }
                    _ = reader.readDataToEndOfFile()
                    break
                }
            }
            let stderr = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            killer.cancel()
            if process.terminationReason == .uncaughtSignal && data.count < outputLimit {
                throw ExtractionError(.corrupt, "\(what) extraction took longer than \(timeout)")
            }
            switch process.terminationStatus {
            case 0: break
            case _ where data.count >= outputLimit: break
            case 127: throw ExtractionError(.toolUnavailable, "\(arguments[0]) is not installed")
            default:
                let detail = String(decoding: stderr.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw ExtractionError(.corrupt, "the \(what) file cannot be read\(detail.isEmpty ? "" : ": \(detail)")")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// A DOCX's `word/document.xml`, read with ZIPFoundation in memory (no `unzip`, which a fresh
/// Debian lacks). A ZIP bomb is refused: the entry's declared size must be within `maximumBytes`
/// and its compression ratio believable, and the bytes actually unpacked are counted and stopped
/// at `maximumBytes` whatever the header claims.
enum DOCXArchive {
    /// Unpacked ÷ packed beyond which a large entry is taken for a bomb (real documents stay far below).
    static let maximumRatio: UInt64 = 200

    struct TooLarge: Error {}

    static func documentXML(_ data: Data, name: String, maximumBytes: Int) throws -> String {
        let archive: Archive
        do {
            archive = try Archive(data: data, accessMode: .read)
        } catch {
            throw ExtractionError(.corrupt, "'\(name)' is not a readable DOCX (ZIP) file")
        }
        guard let entry = archive["word/document.xml"] else { throw ExtractionError(.corrupt, "'\(name)' has no Word document body") }
        let declared = entry.uncompressedSize
        if declared > UInt64(maximumBytes) {
            throw ExtractionError(.tooLarge, "'\(name)' would unpack to \(declared) bytes, more than the \(maximumBytes) allowed")
        }
        if declared > 1 << 20, entry.compressedSize > 0, declared / entry.compressedSize > maximumRatio {
            throw ExtractionError(.tooLarge, "'\(name)' is compressed \(declared / entry.compressedSize) to 1, which only a ZIP bomb is")
        }
        var xml = Data()
        do {
            _ = try archive.extract(entry, skipCRC32: false) { piece in
                if xml.count + piece.count > maximumBytes { throw TooLarge() }
                xml.append(piece)
            }
        } catch is TooLarge {
            throw ExtractionError(.tooLarge, "'\(name)' unpacks to more than the \(maximumBytes) bytes allowed")
        } catch {
            throw ExtractionError(.corrupt, "'\(name)' is a damaged DOCX (ZIP) file: \(error)")
        }
        return String(decoding: xml, as: UTF8.self)
    }
}
