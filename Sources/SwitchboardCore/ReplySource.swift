/// A document passage an AI reply drew on, as it is stored with the reply (Storage), sent in the
/// turn's final event (Turns) and shown with the message (the api): one type for all three.
public struct ReplySource: Sendable, Hashable, Codable {
    /// The file; nil once the file has been deleted.
    public var fileId: Int64?
    public var name: String
    /// Where in the file (a page, a section, a chunk's ordinal).
    public var position: String
    /// How close the passage was to the question.
    public var score: Float

    public init(fileId: Int64?, name: String, position: String, score: Float) {
        self.fileId = fileId
        self.name = name
        self.position = position
        self.score = score
    }
}
