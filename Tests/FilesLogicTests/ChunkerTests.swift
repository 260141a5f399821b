import Files
import Foundation
import Testing

@Suite struct ChunkerTests {
    @Test func paragraphsAreGatheredUpToTheTargetAndKeepTheirHeading() {
        let text = """
            # Billing

            Invoices are sent on the first day of each month.

            Refunds take five working days.

            # Shipping

            Parcels leave the warehouse within a day.
            """
        let chunks = Chunker(targetCharacters: 200, overlap: 0).chunks(text)
        #expect(chunks.count == 2)
        #expect(chunks[0].position == "Billing")
        #expect(chunks[0].text.contains("Invoices are sent") && chunks[0].text.contains("Refunds take"))
        #expect(chunks[1].position == "Shipping")
        #expect(chunks[1].text.contains("Parcels leave"))
        #expect(chunks.map(\.ordinal) == [0, 1])
    }

    @Test func pagesOfAPDFAreCitedByNumber() {
        let text = "First page text.\n\u{0C}Second page text.\n\u{0C}"
        let chunks = Chunker().chunks(text)
        #expect(chunks.map(\.position) == ["page 1", "page 2"])
    }

    @Test func aLongParagraphIsCutAtSentencesWithOverlap() {
        let sentence = "The quick brown fox jumps over the lazy dog again and again. "
        let text = String(repeating: sentence, count: 40)
        let chunks = Chunker(targetCharacters: 300, overlap: 60).chunks(text)
        #expect(chunks.count > 5)
        for chunk in chunks { #expect(chunk.text.count <= 300 + 60 + 2) }
        // Each chunk after the first starts with the end of the one before.
        let tailWords = chunks[0].text.split(separator: " ").suffix(3).joined(separator: " ")
        #expect(chunks[1].text.hasPrefix(String(tailWords.prefix(5))) || chunks[1].text.contains(tailWords))
    }

    @Test func everyWordOfTheDocumentIsInSomeChunk() {
        let words = (0..<500).map { "word\($0)" }
        let text = stride(from: 0, to: words.count, by: 25).map { words[$0..<min(words.count, $0 + 25)].joined(separator: " ") + "." }
            .joined(separator: "\n\n")
        let chunks = Chunker(targetCharacters: 400, overlap: 50).chunks(text)
        let all = Set(chunks.flatMap { $0.text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "." }).map(String.init) })
        for word in words { #expect(all.contains(word)) }
    }

    @Test func docxLinesAreParagraphs() {
        let text = "Introduction\nThe plan starts in May.\nResults\nSales grew."
        let chunks = Chunker(targetCharacters: 100, overlap: 0).chunks(text, linesAreParagraphs: true)
        #expect(chunks.map(\.position) == ["Introduction", "Results"])
    }

    @Test func emptyTextHasNoChunks() {
        #expect(Chunker().chunks("  \n\n \u{0C} ").isEmpty)
    }
}

@Suite struct ContentSnifferTests {
    @Test func typesComeFromTheBytesNotTheName() {
        #expect(ContentSniffer.sniff(prefix: Array("%PDF-1.7 ...".utf8), name: "notes.txt") == ContentSniffer.pdf)
        #expect(ContentSniffer.sniff(prefix: [0x50, 0x4B, 0x03, 0x04, 0, 0], name: "letter.docx") == ContentSniffer.docx)
        #expect(ContentSniffer.sniff(prefix: [0x50, 0x4B, 0x03, 0x04, 0, 0], name: "archive.zip") == nil)
        #expect(ContentSniffer.sniff(prefix: Array("<!DOCTYPE html><html>".utf8), name: "page.pdf") == ContentSniffer.html)
        #expect(ContentSniffer.sniff(prefix: Array("# Title".utf8), name: "readme.md") == ContentSniffer.markdown)
        #expect(ContentSniffer.sniff(prefix: Array("plain words".utf8), name: "x.pdf") == ContentSniffer.plainText)
        #expect(ContentSniffer.sniff(prefix: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13], name: "a.txt") == nil)
        #expect(ContentSniffer.sniff(prefix: [0xFF, 0xD8, 0xFF, 0xE0], name: "photo.txt") == nil)
    }

    @Test func fileNamesLoseTheirDirectories() {
        #expect(FileIntake.cleanName("../../etc/passwd") == "passwd")
        #expect(FileIntake.cleanName("C:\\Users\\a\\report.pdf") == "report.pdf")
        #expect(FileIntake.cleanName("  ") == "upload")
    }
}
