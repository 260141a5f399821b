import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardCore

extension SwitchboardError.Code {
    static let unsupportedMediaType: Self = "unsupported_media_type"
    static let idempotencyMismatch: Self = "idempotency_key_reused"
    static let idempotencyInProgress: Self = "idempotency_key_in_use"
}

enum APIJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }()

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let data = try encoder.encode(value)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Reads and decodes a JSON request body; every failure names the field (or `body`). With
    /// `emptyIs`, no body at all stands for that value (a route whose fields are all optional).
    static func decode<T: Decodable>(_ type: T.Type, from request: inout Request, maxBytes: Int, emptyIs: T? = nil) async throws -> T {
        if let contentType = request.headers[.contentType], !contentType.lowercased().contains("json") {
            throw SwitchboardError(.unsupportedMediaType, status: 415, "Content-Type must be application/json")
        }
        let buffer = try await collect(&request, maxBytes: maxBytes)
        if buffer.readableBytes == 0, let emptyIs { return emptyIs }
        guard buffer.readableBytes > 0 else { throw SwitchboardError.invalidField("body", "a JSON object is required") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    static func collect(_ request: inout Request, maxBytes: Int) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBytes {
            throw tooLarge(maxBytes)
        }
        do {
            return try await request.collectBody(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge(maxBytes)
        }
    }

    static func tooLarge(_ maxBytes: Int) -> SwitchboardError {
        SwitchboardError(.payloadTooLarge, status: 413, "the request body is larger than \(maxBytes) bytes")
    }

    static func describe(_ error: DecodingError) -> SwitchboardError {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = (codingPath + (last.map { [$0] } ?? [])).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "body" : keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .invalidField(path(context.codingPath, key), "is required")
        case .valueNotFound(_, let context):
            return .invalidField(path(context.codingPath), "must not be null")
        case .typeMismatch(let type, let context):
            let field = path(context.codingPath)
            return .invalidField(field, field == "body" ? "must be a JSON object" : "must be \(typeName(type))")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return .invalidField("body", "is not valid JSON") }
            return .invalidField(path(context.codingPath), "has an invalid value")
        @unknown default:
            return .invalidField("body", "could not be read")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int64.Type, is Int.Type: "an integer"
        case is Bool.Type: "a boolean"
        case is Double.Type: "a number"
        default: "of another type"
        }
    }
}
