/// The three shapes an inbound mail arrives in over HTTP, read into one `ParsedMail`:
/// Postmark-style JSON (`From`, `Subject`, `TextBody`, `HtmlBody`, `Headers[]`, `Attachments[]`;
/// its `RawEmail` when present), Mailgun-style forms (urlencoded or multipart: `sender`, `from`,
/// `subject`, `body-plain`, `body-html`, `message-headers`, `attachment-N`, or the whole message in
/// `body-mime`), and raw MIME (`message/rfc822`).
import Crypto
import Foundation
import Mail
import SwitchboardCore

public enum EmailWebhookFormat: String, Sendable, Equatable {
    case postmark, mailgun, rawMIME = "raw"

    /// The format a request's Content-Type names; nil for anything else.
    public static func of(contentType: String?) -> EmailWebhookFormat? {
        let type = HeaderValueWithParameters.parse(contentType ?? "").value
        switch type {
        case "application/json": return .postmark
        case "application/x-www-form-urlencoded", "multipart/form-data": return .mailgun
        case "message/rfc822", "text/plain": return .rawMIME
        default: return nil
        }
    }
}

/// A mail as received, before it is threaded and stored.
public struct ReceivedMail: Sendable, Equatable {
    public var mail: ParsedMail
    /// What dedupes a delivery retried by the peer: the Message-ID, else a hash of the mail.
    public var externalID: String
    /// Envelope recipients the peer names beside the headers (Mailgun's `recipient`, Postmark's
    /// `OriginalRecipient`): a `reply+{token}` address may only be there.
    public var envelopeRecipients: [String]

    public init(mail: ParsedMail, externalID: String? = nil, envelopeRecipients: [String] = []) {
        self.mail = mail
        self.externalID = externalID ?? Self.externalID(for: mail)
        self.envelopeRecipients = envelopeRecipients
    }

    /// The Message-ID (hashed when longer than a column holds), else a hash of sender, date,
    /// subject and text: the same mail delivered twice gets the same id.
    public static func externalID(for mail: ParsedMail) -> String {
        if let id = mail.messageID, !id.isEmpty {
            return id.utf8.count <= 255 ? id : "sha256:" + hex(SHA256.hash(data: Data(id.utf8)))
        }
        let basis = [mail.from?.address ?? "", mail.headers["Date"] ?? "", mail.subject, mail.text].joined(separator: "\u{0}")
        return "sha256:" + hex(SHA256.hash(data: Data(basis.utf8)))
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    /// Every address the mail was sent to: To, Cc, Delivered-To, X-Original-To and the envelope.
    public var recipients: [String] {
        mail.to.map(\.address) + mail.cc.map(\.address)
            + (mail.headers.values("Delivered-To") + mail.headers.values("X-Original-To")).flatMap { MailAddresses.parse($0).map(\.address) }
            + envelopeRecipients
    }
}

enum EmailWebhookParsing {
    // MARK: Postmark

    struct Postmark: Decodable {
        struct Address: Decodable {
            var Email: String?
            var Name: String?
            var MailboxHash: String?
        }
        struct Header: Decodable {
            var Name: String
            var Value: String
        }
        struct Attachment: Decodable {
            var Name: String?
            var Content: String?
            var ContentType: String?
            var ContentID: String?
        }
        var From: String?
        var FromFull: Address?
        var To: String?
        var ToFull: [Address]?
        var Cc: String?
        var OriginalRecipient: String?
        var Subject: String?
        var MessageID: String?
        var Date: String?
        var TextBody: String?
        var HtmlBody: String?
        var Headers: [Header]?
        var Attachments: [Attachment]?
        var RawEmail: String?
    }

    static func postmark(_ body: [UInt8]) throws -> ReceivedMail {
        let json: Postmark
        do {
            json = try JSONDecoder().decode(Postmark.self, from: Data(body))
        } catch {
            throw SwitchboardError.badRequest("the body is not a Postmark-style inbound JSON object")
        }
        let envelope = [json.OriginalRecipient].compactMap { $0 }.filter { !$0.isEmpty }
        if let raw = json.RawEmail, !raw.isEmpty {
            return ReceivedMail(mail: MIMEParser.parse(Array(raw.utf8)), envelopeRecipients: envelope)
        }
        var fields = (json.Headers ?? []).map { MailHeader(name: $0.Name, value: $0.Value) }
        func add(_ name: String, _ value: String?) {
            if let value, !value.isEmpty, !fields.contains(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) {
                fields.append(MailHeader(name: name, value: value))
            }
        }
        add("Subject", json.Subject)
        add("Date", json.Date)
        add("To", json.To)
        add("Cc", json.Cc)
        var mail = ParsedMail(headers: MailHeaders(fields))
        mail.subject = json.Subject ?? mail.headers.text("Subject") ?? ""
        if let email = json.FromFull?.Email, !email.isEmpty {
            mail.from = MailAddress(name: json.FromFull?.Name, address: email)
        } else {
            mail.from = json.From.flatMap { MailAddresses.parse($0).first }
        }
        mail.to = json.ToFull?.compactMap { $0.Email.map { email in MailAddress(name: nil, address: email) } }
            ?? MailAddresses.parse(json.To ?? "")
        mail.cc = MailAddresses.parse(json.Cc ?? "")
        mail.replyTo = mail.headers.values("Reply-To").flatMap(MailAddresses.parse)
        mail.messageID = MailAddresses.messageIDs(mail.headers["Message-ID"]).first
        mail.inReplyTo = MailAddresses.messageIDs(mail.headers["In-Reply-To"])
        mail.references = MailAddresses.messageIDs(mail.headers.values("References").joined(separator: " "))
        mail.html = json.HtmlBody.flatMap { $0.isEmpty ? nil : $0 }
        let text = (json.TextBody ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        mail.text = text.isEmpty ? (mail.html.map(HTMLText.plainText) ?? "") : text
        for attachment in json.Attachments ?? [] {
            let (bytes, clean) = TransferEncoding.decodeBase64(Array((attachment.Content ?? "").utf8))
            if !clean { mail.warnings.append("attachment '\(attachment.Name ?? "")' was not clean base64") }
            mail.attachments.append(MailAttachment(
                filename: attachment.Name ?? "attachment-\(mail.attachments.count + 1)",
                contentType: attachment.ContentType ?? "application/octet-stream", contentID: attachment.ContentID, data: bytes))
        }
        let fallback = json.MessageID.map { "postmark:\($0)" }
        return ReceivedMail(mail: mail, externalID: mail.messageID == nil ? fallback : nil, envelopeRecipients: envelope)
    }

    // MARK: Mailgun

    static func formFields(_ request: InboundRequest) throws -> [FormField] {
        let type = HeaderValueWithParameters.parse(request.header("Content-Type") ?? "")
        if type.value == "multipart/form-data" {
            guard let boundary = type["boundary"], let fields = FormData.multipart(request.body, boundary: boundary) else {
                throw SwitchboardError.badRequest("the multipart/form-data body has no parts (boundary missing or wrong)")
            }
            return fields
        }
        return FormData.urlencoded(request.body)
    }

    static func mailgun(_ fields: [FormField]) throws -> ReceivedMail {
        func field(_ name: String) -> String? { fields.first { $0.name == name }?.text }
        let envelope = [field("recipient")].compactMap { $0 }.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let raw = fields.first(where: { $0.name == "body-mime" }) {
            return ReceivedMail(mail: MIMEParser.parse(raw.data), envelopeRecipients: envelope)
        }
        guard field("from") != nil || field("sender") != nil else {
            throw SwitchboardError.badRequest("the form has neither 'from' nor 'sender': not a Mailgun-style inbound post")
        }
        var headerFields: [MailHeader] = []
        if let headersJSON = field("message-headers"), let pairs = try? JSONSerialization.jsonObject(with: Data(headersJSON.utf8)) as? [[Any]] {
            for pair in pairs where pair.count == 2 {
                if let name = pair[0] as? String, let value = pair[1] as? String { headerFields.append(MailHeader(name: name, value: value)) }
            }
        }
        var mail = ParsedMail(headers: MailHeaders(headerFields))
        mail.subject = field("subject") ?? mail.headers.text("Subject") ?? ""
        mail.from = (field("from") ?? mail.headers["From"]).flatMap { MailAddresses.parse($0).first }
            ?? field("sender").map { MailAddress(address: $0) }
        mail.to = MailAddresses.parse(field("To") ?? mail.headers["To"] ?? "")
        mail.cc = MailAddresses.parse(mail.headers["Cc"] ?? "")
        mail.replyTo = mail.headers.values("Reply-To").flatMap(MailAddresses.parse)
        mail.messageID = MailAddresses.messageIDs(field("Message-Id") ?? mail.headers["Message-ID"]).first
        mail.inReplyTo = MailAddresses.messageIDs(field("In-Reply-To") ?? mail.headers["In-Reply-To"])
        mail.references = MailAddresses.messageIDs(field("References") ?? mail.headers.values("References").joined(separator: " "))
        let html = field("body-html").flatMap { $0.isEmpty ? nil : $0 }
        mail.html = html
        let text = (field("body-plain") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        mail.text = text.isEmpty ? (html.map(HTMLText.plainText) ?? "") : text
        for file in fields where file.name.hasPrefix("attachment") && file.filename != nil {
            mail.attachments.append(MailAttachment(
                filename: file.filename ?? file.name, contentType: file.contentType ?? "application/octet-stream", data: file.data))
        }
        return ReceivedMail(mail: mail, envelopeRecipients: envelope)
    }
}
