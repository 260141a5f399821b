/// HTML form bodies as webhooks send them: `multipart/form-data` (RFC 7578, parts split like any
/// MIME multipart, files kept as bytes) and `application/x-www-form-urlencoded`.
import Foundation

public struct FormField: Sendable, Hashable {
    public var name: String
    /// Set for a file part.
    public var filename: String?
    public var contentType: String?
    public var data: [UInt8]

    public init(name: String, filename: String? = nil, contentType: String? = nil, data: [UInt8]) {
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.data = data
    }

    public var text: String { Charsets.decode(data, charset: nil).text }
}

public enum FormData {
    /// The fields of a `multipart/form-data` body; nil when the boundary never appears.
    public static func multipart(_ body: [UInt8], boundary: String) -> [FormField]? {
        let (parts, _) = MIMEParser.splitMultipart(body[...], boundary: boundary)
        guard !parts.isEmpty else { return nil }
        var fields: [FormField] = []
        for part in parts {
            var warnings: [String] = []
            let (headerBlock, content) = MailHeaders.split(part)
            let headers = MailHeaders.parse(headerBlock, warnings: &warnings)
            guard let disposition = headers["Content-Disposition"].map(HeaderValueWithParameters.parse), let name = disposition["name"] else { continue }
            let type = headers["Content-Type"].map { HeaderValueWithParameters.parse($0).value }
            var data = Array(content)
            if headers["Content-Transfer-Encoding"]?.lowercased() == "base64" { data = TransferEncoding.decodeBase64(data).bytes }
            fields.append(FormField(name: name, filename: disposition["filename"], contentType: type, data: data))
        }
        return fields
    }

    /// The fields of an `application/x-www-form-urlencoded` body (`+` is a space).
    public static func urlencoded(_ body: [UInt8]) -> [FormField] {
        body.split(separator: 0x26).compactMap { pair in
            let pieces = pair.split(separator: 0x3D, maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawName = pieces.first, !rawName.isEmpty else { return nil }
            func decode(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
                HeaderValueWithParameters.percentDecode(Substring(decoding: bytes.map { $0 == 0x2B ? 0x20 : $0 }, as: UTF8.self))
            }
            let name = String(decoding: decode(rawName), as: UTF8.self)
            return FormField(name: name, data: pieces.count > 1 ? decode(pieces[1]) : [])
        }
    }
}
