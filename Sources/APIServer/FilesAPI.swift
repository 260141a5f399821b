import AIProviders
import Crypto
import Files
import Foundation
import HTTPTypes
import Hummingbird
import MultipartKit
import NIOCore
import NIOPosix
import Storage
import SwitchboardCore

#if canImport(Glibc)
import Glibc
#endif

/// `/api/v1/files` and `/api/v1/search`: a user's uploaded documents and search over their
/// chunks. An upload is `multipart/form-data` with one `file` part, streamed to disk as it
/// arrives (never held in memory whole), its type sniffed from its first bytes, and optionally a
/// `topicId` or `topic` part putting it in one of the user's routing topics (also set with
/// `PATCH`); the file is then extracted, chunked and embedded by workers (`status` tells how far
/// it got). Another user's file or topic is answered like one that does not exist (404).
struct FilesAPI: Sendable {
    let dependencies: APIDependencies
    var documents: any DocumentStore { dependencies.stores.documents }
    var configuration: FilesConfiguration { dependencies.files.configuration }
    var api: PublicAPI { PublicAPI(dependencies: dependencies) }
    var intake: FileIntake { dependencies.fileIntake }

    /// Multipart framing (boundaries, part headers) allowed beyond the file's own bytes.
    static let framingAllowance = 64 * 1024
    static let maxQueryCharacters = 2000
    static let maxResults = 50
    /// The form fields an upload may carry besides `file`, and their longest value in bytes.
    static let formFields: Set<String> = ["topic", "topicId"]
    static let maxFieldBytes = 512

    // MARK: - Upload

    func upload(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let limit = configuration.maxUploadBytes
        guard let contentType = request.headers[.contentType], let boundary = Self.boundary(contentType) else {
            throw SwitchboardError(.unsupportedFile, status: 415, "upload the file as multipart/form-data with a `file` part")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit + Self.framingAllowance {
            throw Self.tooLarge(limit)
        }
        let path = intake.newPath(ownerID: caller.user.id)
        let upload = UploadState()
        let parser = MultipartParser(boundary: boundary)
        var headerGuard = MultipartHeaderGuard(boundary: boundary)
        parser.onHeader = { name, value in upload.header(name, value) }
        parser.onBody = { buffer in upload.body(&buffer, limit: limit) }
        parser.onPartComplete = { upload.partComplete() }
        let writer = UploadWriter(path: path)
        do {
            for try await buffer in request.body {
                do {
                    guard headerGuard.accepts(buffer.readableBytesView) else { throw MultipartHeaderGuard.Refused() }
                    try parser.execute(buffer)
                } catch {
                    throw SwitchboardError.badRequest("the multipart/form-data body is malformed")
                }
                if upload.exceeded { throw Self.tooLarge(limit) }
                if !upload.pending.isEmpty {
                    let bytes = upload.pending
                    upload.pending = []
                    try await writer.write(bytes)
                }
            }
            await writer.close()
            guard upload.fileSeen, upload.fileComplete else {
                throw SwitchboardError.invalidField("file", "is required: a multipart part named `file` with a filename")
            }
            guard upload.size > 0 else { throw SwitchboardError(.emptyFile, status: 400, "the file is empty (0 bytes)") }
            if let field = upload.fieldTooLong {
                throw SwitchboardError.invalidField(field, "is longer than \(Self.maxFieldBytes) bytes")
            }
            let topicID = try await topicID(
                id: try upload.fields["topicId"].map { try Self.topicIDValue(String(decoding: $0, as: UTF8.self)) },
                name: upload.fields["topic"].map { String(decoding: $0, as: UTF8.self) }, caller: caller)
            let mimeType: String
            do {
                mimeType = try FileIntake.sniffed(upload.prefix, name: upload.fileName)
            } catch let error as FileIntakeError {
                // The request itself is well-formed multipart: its content is what cannot be read (422).
                throw SwitchboardError(.unsupportedFile, status: 422, error.message)
            }
            let digest = upload.hasher.finalize().map { String(format: "%02x", $0) }.joined()
            let stored: DocumentFile
            do {
                stored = try await intake.register(NewFile(
                    ownerID: caller.user.id, name: FileIntake.cleanName(upload.fileName), mimeType: mimeType, size: Int64(upload.size),
                    sha256: digest, storagePath: path, topicID: topicID))
            } catch let error as DatabaseError where error.code == .foreignKeyViolation {
                throw SwitchboardError.notFound("no topic \(topicID.map(String.init) ?? "")")
            } catch let error as FileIntakeError {
                throw SwitchboardError.unavailable(error.message)
            }
            return try APIJSON.response(FileJSON(stored), status: .created, headers: [.location: "/api/v1/files/\(stored.id)"])
        } catch {
            await writer.close()
            await intake.removeBytes(at: path)
            throw error
        }
    }

    // MARK: - Lifecycle

    func list(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let limit = try api.pageSize(request)
        let before = try api.cursor(request, name: "cursor")
        let files = try await documents.documents(ownerID: caller.user.id, limit: limit + 1, beforeID: before)
        let page = Array(files.prefix(limit))
        let next = files.count > limit ? page.last.map { String($0.id) } : nil
        return try APIJSON.response(PageJSON(data: page.map(FileJSON.init), nextCursor: next))
    }

    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "fileId", what: "file")
        guard let file = try await documents.document(id: id, ownerID: caller.user.id) else { throw SwitchboardError.notFound("no file \(id)") }
        return try APIJSON.response(FileJSON(file))
    }

    /// Puts the file in one of the caller's topics (`topicId` or `topic`), or in none (`null`);
    /// every node drops the owner's index, whose rows carry their file's topic.
    func update(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "fileId", what: "file")
        var request = request
        let body = try await APIJSON.decode(UpdateFileBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        guard try await documents.document(id: id, ownerID: caller.user.id) != nil else { throw SwitchboardError.notFound("no file \(id)") }
        let topicID: Int64?
        switch (body.topicId, body.topic) {
        case (.some(.some(let given)), nil): topicID = try await self.topicID(id: given, name: nil, caller: caller)
        case (nil, .some(.some(let name))): topicID = try await self.topicID(id: nil, name: name, caller: caller)
        case (.some(nil), nil), (nil, .some(nil)): topicID = nil
        case (nil, nil): throw SwitchboardError.invalidField("topicId", "is required (a topic id, or null for none; or topic: a topic name)")
        default: throw SwitchboardError.invalidField("topicId", "give either topicId or topic, not both")
        }
        let updated: DocumentFile?
        do {
            updated = try await documents.setTopic(fileID: id, ownerID: caller.user.id, topicID: topicID)
        } catch let error as DatabaseError where error.code == .foreignKeyViolation {
            throw SwitchboardError.notFound("no topic \(topicID.map(String.init) ?? "")")
        }
        guard let updated else { throw SwitchboardError.notFound("no file \(id)") }
        await IndexInvalidation.announce(ownerID: caller.user.id, redis: dependencies.redis, logger: context.logger)
        if let cache = dependencies.files.search?.cache { await cache.invalidate(ownerID: caller.user.id) }
        return try APIJSON.response(FileJSON(updated))
    }

    /// Removes the file, its chunks and vectors, and its bytes; every node drops the owner's index.
    func delete(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "fileId", what: "file")
        guard let file = try await documents.deleteDocument(id: id, ownerID: caller.user.id) else {
            throw SwitchboardError.notFound("no file \(id)")
        }
        await intake.removeBytes(at: file.storagePath)
        await IndexInvalidation.announce(ownerID: caller.user.id, redis: dependencies.redis, logger: context.logger)
        if let cache = dependencies.files.search?.cache { await cache.invalidate(ownerID: caller.user.id) }
        return Response(status: .noContent)
    }

    // MARK: - Search

    func search(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let query = request.uri.queryParameters["q"].map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard !query.isEmpty else { throw SwitchboardError.invalidField("q", "is required") }
        guard query.count <= Self.maxQueryCharacters else {
            throw SwitchboardError.invalidField("q", "is longer than \(Self.maxQueryCharacters) characters")
        }
        var k = 10
        if let raw = request.uri.queryParameters["k"] {
            guard let value = Int(String(raw)), (1...Self.maxResults).contains(value) else {
                throw SwitchboardError.invalidField("k", "must be an integer from 1 to \(Self.maxResults)")
            }
            k = value
        }
        // Only one topic's documents when a topic is named.
        var scope = SearchScope.all
        let topicIDParameter = try request.uri.queryParameters["topicId"].map { try Self.topicIDValue(String($0)) }
        let topicName = request.uri.queryParameters["topic"].map(String.init)
        if topicIDParameter != nil, topicName != nil {
            throw SwitchboardError.invalidField("topicId", "give either topicId or topic, not both")
        }
        if let topicIDParameter {
            _ = try await topicID(id: topicIDParameter, name: nil, caller: caller)
            scope = .topics([topicIDParameter])
        } else if let topicName {
            scope = .topics(try await topicIDs(named: topicName, caller: caller))
        }
        guard let search = dependencies.files.search else { throw SwitchboardError.unavailable("search needs an embedding provider") }
        let hits: [SearchHit]
        do {
            hits = try await search.search(ownerID: caller.user.id, query: query, k: k, scope: scope)
        } catch let error as AIProviderError {
            throw SwitchboardError.unavailable("the embedding provider failed: \(error.code)")
        }
        return try APIJSON.response(SearchJSON(model: search.embedder.model, data: hits.map(SearchHitJSON.init)))
    }

    // MARK: - Topics

    /// A topic id as a form field or query parameter carries it.
    static func topicIDValue(_ raw: String) throws -> Int64 {
        guard let value = Int64(raw.trimmingCharacters(in: .whitespaces)), value > 0 else {
            throw SwitchboardError.invalidField("topicId", "must be a positive integer")
        }
        return value
    }

    /// The topic the caller named, by id or by name (their own before a global one of that
    /// name); nil when neither is given; 404 for a topic the caller does not see.
    func topicID(id: Int64?, name: String?, caller: AuthenticatedCaller) async throws -> Int64? {
        if id != nil, name != nil { throw SwitchboardError.invalidField("topicId", "give either topicId or topic, not both") }
        if let id {
            guard try await dependencies.stores.topics.topic(id: id, visibleTo: caller.user.id) != nil else {
                throw SwitchboardError.notFound("no topic \(id)")
            }
            return id
        }
        guard let name else { return nil }
        let visible = try await dependencies.stores.topics.topics(visibleTo: caller.user.id).filter { $0.name == name }
        guard let topic = visible.first(where: { $0.ownerID == caller.user.id }) ?? visible.first else {
            throw SwitchboardError.notFound("no topic named '\(name.prefix(100))'")
        }
        return topic.id
    }

    /// Every topic named `name` the caller sees (their own and a global one), as a turn of that topic searches them.
    func topicIDs(named name: String, caller: AuthenticatedCaller) async throws -> Set<Int64> {
        let ids = Set(try await dependencies.stores.topics.topics(visibleTo: caller.user.id).filter { $0.name == name }.map(\.id))
        guard !ids.isEmpty else { throw SwitchboardError.notFound("no topic named '\(name.prefix(100))'") }
        return ids
    }

    // MARK: - Helpers

    static func tooLarge(_ limit: Int) -> SwitchboardError {
        SwitchboardError(.payloadTooLarge, status: 413, "the file is larger than \(limit) bytes")
    }

    /// The boundary of a `multipart/form-data` content type.
    static func boundary(_ contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return value.isEmpty || value.count > 200 ? nil : value
        }
        return nil
    }

    /// A Content-Disposition parameter (`name`, `filename`), unquoted.
    static func parameter(_ name: String, in header: String) -> String? {
        for part in header.split(separator: ";").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == name else { continue }
            var value = pair[1]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return nil
    }
}

/// What the multipart parser's callbacks have seen of the upload so far. Touched only by the
/// request's own task (the parser runs its callbacks synchronously inside `execute`).
private final class UploadState {
    var headers: [(String, String)] = []
    /// The form field (`FilesAPI.formFields`) of the part being read, and the values read so far.
    var field: String?
    var fields: [String: [UInt8]] = [:]
    var fieldTooLong: String?
    var inFile = false
    var fileSeen = false
    var fileComplete = false
    var fileName = "upload"
    var size = 0
    var exceeded = false
    var prefix: [UInt8] = []
    var pending: [UInt8] = []
    var hasher = SHA256()

    func header(_ name: String, _ value: String) {
        headers.append((name, value))
        guard name.lowercased() == "content-disposition" else { return }
        let partName = FilesAPI.parameter("name", in: value)
        if let partName, FilesAPI.formFields.contains(partName), !inFile {
            field = partName
            fields[partName] = []
            return
        }
        guard !fileSeen else { return }
        if partName == "file" {
            inFile = true
            fileSeen = true
            fileName = FilesAPI.parameter("filename", in: value) ?? "upload"
        }
    }

    func body(_ buffer: inout ByteBuffer, limit: Int) {
        if let field {
            let value = fields[field, default: []]
            if value.count + buffer.readableBytes > FilesAPI.maxFieldBytes {
                fieldTooLong = field
            } else {
                fields[field] = value + buffer.readableBytesView
            }
            return
        }
        guard inFile, !exceeded else { return }
        let bytes = buffer.readableBytesView
        size += bytes.count
        if size > limit {
            exceeded = true
            return
        }
        if prefix.count < ContentSniffer.prefixLength { prefix += bytes.prefix(ContentSniffer.prefixLength - prefix.count) }
        hasher.update(data: Array(bytes))
        pending += bytes
    }

    func partComplete() {
        if inFile { fileComplete = true }
        field = nil
        inFile = false
        headers = []
    }
}

/// Writes the upload to its file on NIO's blocking-I/O pool, never on the cooperative pool.
private final class UploadWriter: @unchecked Sendable {
    // `descriptor` is only touched on the pool, one write at a time (the request awaits each).
    private var descriptor: Int32 = -1
    private let path: String

    init(path: String) { self.path = path }

    func write(_ bytes: [UInt8]) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            if self.descriptor < 0 {
                try FileManager.default.createDirectory(atPath: (self.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                self.descriptor = open(self.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                if self.descriptor < 0 { throw SwitchboardError.unavailable("the file could not be stored") }
            }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(self.descriptor, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SwitchboardError.unavailable("the file could not be stored")
                }
                offset += written
            }
        }
    }

    func close() async {
        _ = try? await NIOThreadPool.singleton.runIfActive {
            if self.descriptor >= 0 {
                _ = Glibc.close(self.descriptor)
                self.descriptor = -1
            }
        }
    }
}

/// A file as the API shows it.
struct FileJSON: Encodable {
    let id: Int64
    let name: String
    let size: Int64
    let contentType: String
    let status: String
    let chunks: Int
    let error: String?
    let embeddingModel: String?
    let topicId: Int64?
    let createdAt: Date
    let updatedAt: Date

    init(_ file: DocumentFile) {
        id = file.id
        name = file.name
        size = file.size
        contentType = file.mimeType
        status = file.status.rawValue
        chunks = file.chunkCount
        error = file.error
        embeddingModel = file.embedModel
        topicId = file.topicID
        createdAt = file.createdAt
        updatedAt = file.updatedAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(size, forKey: .size)
        try c.encode(contentType, forKey: .contentType)
        try c.encode(status, forKey: .status)
        try c.encode(chunks, forKey: .chunks)
        try c.encode(error, forKey: .error)
        try c.encode(embeddingModel, forKey: .embeddingModel)
        try c.encode(topicId, forKey: .topicId)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, name, size, contentType, status, chunks, error, embeddingModel, topicId, createdAt, updatedAt
    }
}

/// `PATCH /api/v1/files/{id}`: `topicId` (a number, or null for no topic) or `topic` (a name).
struct UpdateFileBody: Decodable {
    /// nil: not given; `.some(nil)`: null (no topic).
    let topicId: Int64??
    let topic: String??

    enum CodingKeys: String, CodingKey { case topicId, topic }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        topicId = c.contains(.topicId) ? .some(try c.decodeIfPresent(Int64.self, forKey: .topicId)) : nil
        topic = c.contains(.topic) ? .some(try c.decodeIfPresent(String.self, forKey: .topic)) : nil
    }
}

struct SearchHitJSON: Encodable {
    let fileId: Int64
    let fileName: String
    let chunkId: Int64
    let position: String
    let text: String
    let score: Float

    init(_ hit: SearchHit) {
        fileId = hit.fileID
        fileName = hit.fileName
        chunkId = hit.chunkID
        position = hit.position
        text = hit.text
        score = hit.score
    }
}

struct SearchJSON: Encodable {
    let model: String
    let data: [SearchHitJSON]
}
