/// Mail a machine wrote (RFC 3834 auto-replies, vacation notices, bounces): stored, never
/// answered, so two auto-responders cannot answer each other forever.
import Foundation

public enum AutomaticMailDetector {
    public static func reason(headers: MailHeaders, from: MailAddress?) -> AutomaticMail? {
        if let submitted = headers["Auto-Submitted"]?.trimmingCharacters(in: .whitespaces).lowercased(),
           !submitted.isEmpty, !submitted.hasPrefix("no") {
            return .autoSubmitted
        }
        if headers.contains("X-Autoreply") || headers.contains("X-Autorespond") {
            return .autoReply
        }
        if let precedence = headers["Precedence"]?.lowercased(), precedence.contains("auto_reply") { return .autoReply }
        if let type = headers["Content-Type"], HeaderValueWithParameters.parse(type).value == "multipart/report" { return .bounce }
        if let local = from?.localPart.lowercased(), local == "mailer-daemon" || local == "postmaster" { return .bounce }
        return nil
    }
}
