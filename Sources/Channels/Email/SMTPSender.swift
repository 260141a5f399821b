/// Sends one message over SMTP with libcurl (`smtp://` with STARTTLS required or tried, or
/// `smtps://`), with AUTH when credentials are set. A failure is sorted for the delivery queue:
/// a 5xx answer (or TLS the server cannot do) is permanent and keeps the server's reply; a 4xx
/// answer or a connection that fails is worth retrying.
import CCurl
import Foundation
import SwitchboardCore

public struct SMTPSender: Sendable {
    public var url: String
    public var options: CurlOptions

    public init(url: String, options: CurlOptions) {
        self.url = url
        self.options = options
    }

    /// Sends `message` (RFC 5322 bytes) from `from` to `recipients` (envelope addresses).
    public func send(from: String, to recipients: [String], message: [UInt8]) async throws {
        do {
            _ = try await CurlTransfer.perform(url: url, options: options, upload: message) { handle, state in
                sb_curl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(from)>")
                var list: UnsafeMutablePointer<curl_slist>?
                for recipient in recipients { list = curl_slist_append(list, "<\(recipient)>") }
                state.keep(list)
                sb_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, list)
            }
        } catch let failure as CurlFailure {
            throw Self.classify(failure)
        }
    }

    /// A failure as the delivery queue should treat it.
    public static func classify(_ failure: CurlFailure) -> any Error {
        if (500..<600).contains(failure.responseCode) {
            return DeliveryError(.smtpRejected, "the SMTP server refused the message: \(failure.serverReply.isEmpty ? "\(failure.responseCode)" : failure.serverReply)")
        }
        if failure.code == Int(CURLE_USE_SSL_FAILED.rawValue) {
            return DeliveryError(.smtpRejected, "the SMTP server does not offer STARTTLS, which the channel requires (\(failure.message))")
        }
        if failure.code == Int(CURLE_LOGIN_DENIED.rawValue) {
            return DeliveryError(.smtpRejected, "the SMTP server refused the credentials: \(failure.serverReply)")
        }
        return SMTPRetryableError(failure: failure)
    }
}

/// A send worth trying again later (a 4xx answer, a refused or dropped connection).
public struct SMTPRetryableError: Error, CustomStringConvertible {
    public var failure: CurlFailure
    public var description: String { "SMTP send failed, will retry: \(failure)" }
}

extension ErrorCode where Kind == DeliveryFailure {
    /// The SMTP server refused the message for good (a 5xx answer, which the error keeps).
    public static var smtpRejected: Self { "smtp_rejected" }
    /// The channel has no SMTP server configured, so replies cannot be sent.
    public static var smtpNotConfigured: Self { "smtp_not_configured" }
}
