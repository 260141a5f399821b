import Foundation
import Logging
import Storage
import SwitchboardCore

/// The `extract` job's work: reads a stored file, extracts its text and stores it with the file
/// (status `done`), or stores the error (status `failed`) so the turn can report it.
public struct FileExtraction: Sendable {
    public var files: any FileStore
    public var extractor: TextExtractor
    public var logger: Logger

    public init(files: any FileStore, extractor: TextExtractor = TextExtractor(), logger: Logger = Logger(label: "switchboard.extract")) {
        self.files = files
        self.extractor = extractor
        self.logger = logger
    }

    /// Extracts file `fileID`. A file already done is left alone. Document problems are stored on
    /// the file and returned as `.failure`; database errors are thrown (the job retries).
    @discardableResult
    public func run(fileID: Int64) async throws -> Result<String, ExtractionError> {
        guard let file = try await files.file(id: fileID) else {
            return .failure(ExtractionError(.unreadable, "file \(fileID) does not exist"))
        }
        if file.extractStatus == .done, let text = file.extractedText { return .success(text) }
        _ = try await files.updateExtraction(id: fileID, status: .running, text: nil, error: nil)
        do {
            let text = try await extractor.extract(path: file.storagePath, name: file.name, mimeType: file.mimeType)
            _ = try await files.updateExtraction(id: fileID, status: .done, text: text, error: nil)
            logger.debug("file extracted", metadata: ["file_id": "\(fileID)", "characters": "\(text.count)"])
            return .success(text)
        } catch let error as ExtractionError {
            _ = try await files.updateExtraction(id: fileID, status: .failed, text: nil, error: error.description)
            logger.info("file extraction failed", metadata: ["file_id": "\(fileID)", "error": "\(error)"])
            return .failure(error)
        }
    }
}
