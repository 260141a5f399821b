import Foundation
import SwitchboardCore

/// The text of a Word document's `word/document.xml`: `<w:t>` runs, paragraphs as lines, tabs and breaks kept.
public enum DOCXText {
    public static func plainText(fromDocumentXML xml: String) -> String {
        var output = ""
        var index = xml.startIndex
        var inText = false
        while index < xml.endIndex {
            let character = xml[index]
            if character == "<", let close = xml[index...].firstIndex(of: ">") {
                let tag = xml[xml.index(after: index)..<close]
                let isEnd = tag.hasPrefix("/")
                let name = (isEnd ? "/" : "") + tag.drop(while: { $0 == "/" }).prefix(while: { !$0.isWhitespace && $0 != "/" })
                switch name {
                case "w:t": inText = !tag.hasSuffix("/")
                case "/w:t": inText = false
                case "/w:p": output.append("\n")
                case "w:tab": output.append("\t")
                case "w:br", "w:cr": output.append("\n")
                default: break
                }
                index = xml.index(after: close)
                continue
            }
            if inText { output.append(character) }
            index = xml.index(after: index)
        }
        return HTMLText.decodeEntities(output).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
