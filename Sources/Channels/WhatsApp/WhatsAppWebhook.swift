/// The shape of a WhatsApp Cloud API webhook POST (only the fields Switchboard reads): entries of
/// changes whose value carries contacts, messages and statuses.
import Foundation

struct WhatsAppWebhook: Decodable {
    var object: String?
    var entry: [Entry]?

    struct Entry: Decodable {
        var id: String?
        var changes: [Change]?
    }

    struct Change: Decodable {
        var field: String?
        var value: Value?
    }

    struct Value: Decodable {
        var metadata: Metadata?
        var contacts: [Contact]?
        var messages: [Message]?
        var statuses: [Status]?
    }

    struct Metadata: Decodable {
        var phone_number_id: String?
        var display_phone_number: String?
    }

    struct Contact: Decodable {
        struct Profile: Decodable { var name: String? }
        var wa_id: String?
        var profile: Profile?
    }

    struct Message: Decodable {
        struct Text: Decodable { var body: String? }
        struct Media: Decodable {
            var id: String?
            var mime_type: String?
            var caption: String?
            var filename: String?
        }
        var from: String?
        var id: String?
        var timestamp: String?
        var type: String?
        var text: Text?
        var image: Media?
        var document: Media?
        var audio: Media?
        var video: Media?
    }

    struct Status: Decodable {
        var id: String?
        var status: String?
        var recipient_id: String?
    }
}
