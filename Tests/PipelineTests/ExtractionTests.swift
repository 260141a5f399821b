import Foundation
import Pipeline
import Storage
import SwitchboardCore
import TestSupport
import Testing

@Suite struct ExtractionTests {
    let extractor = TextExtractor()

    /// A one-page PDF showing `text`.
    static func pdf(_ text: String) -> Data { TestDocuments.pdf(pages: [text]) }

    /// A minimal DOCX (a ZIP holding word/document.xml), made with the `zip` tool.
    static func docx(paragraphs: [String]) async throws -> Data {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("docx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("word"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let body = paragraphs.map { "<w:p><w:r><w:t xml:space=\"preserve\">\($0)</w:t></w:r></w:p>" }.joined()
        let xml = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"# + body + "</w:body></w:document>"
        try Data(xml.utf8).write(to: folder.appendingPathComponent("word/document.xml"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["zip", "-q", "-r", "out.docx", "word"]
        process.currentDirectoryURL = folder
        try process.run()
        await process.waitForExit()
        return try Data(contentsOf: folder.appendingPathComponent("out.docx"))
    }

    @Test func plainTextAndMarkdown() async throws {
        #expect(try await extractor.extract(data: Data("\u{FEFF}Hello\nworld ".utf8), name: "a.txt", mimeType: "text/plain") == "Hello\nworld")
        #expect(try await extractor.extract(data: Data("# Title\n\n- item".utf8), name: "notes.md", mimeType: "application/octet-stream") == "# Title\n\n- item")
        // Windows-1252 is read too.
        #expect(try await extractor.extract(data: Data([0x43, 0x61, 0x66, 0xE9]), name: "old.txt", mimeType: "text/plain") == "Café")
    }

    @Test func htmlBecomesReadableText() async throws {
        let html = """
            <html><head><title>T</title><style>p{color:red}</style></head><body>
            <h1>Opening&nbsp;hours</h1><script>alert("x")</script><!-- hidden -->
            <p>Mon&ndash;Fri <b>9</b>&#8211;17 &amp; Sat&#x21;</p><ul><li>One</li><li>Two</li></ul></body></html>
            """
        let text = try await extractor.extract(data: Data(html.utf8), name: "page.html", mimeType: "text/html")
        #expect(text.split(separator: "\n").map(String.init) == ["Opening hours", "Mon–Fri 9–17 & Sat!", "- One", "- Two"])
        #expect(!text.contains("\n\n\n"))
    }

    @Test func pdfThroughPdftotext() async throws {
        let text = try await extractor.extract(data: Self.pdf("Quarterly report 2026"), name: "report.pdf", mimeType: "application/pdf")
        #expect(text == "Quarterly report 2026")
    }

    @Test func docxParagraphs() async throws {
        let data = try await Self.docx(paragraphs: ["First paragraph", "Second &amp; last"])
        let text = try await extractor.extract(data: data, name: "letter.docx", mimeType: "application/octet-stream")
        #expect(text == "First paragraph\nSecond & last")
    }

    @Test(arguments: [
        ("broken.pdf", "application/pdf", Data("%PDF-1.4 garbage that is not a pdf".utf8), ExtractionError.Code.corrupt),
        ("fake.pdf", "application/pdf", Data("hello".utf8), .corrupt),
        ("broken.docx", "application/octet-stream", Data([0x50, 0x4B, 0x03, 0x04, 1, 2, 3]), .corrupt),
        ("picture.png", "image/png", Data([0x89, 0x50, 0x4E, 0x47]), .unsupported),
        ("binary.txt", "text/plain", Data([0x41, 0, 0x42]), .corrupt),
    ])
    func badFilesGetAClearError(name: String, mimeType: String, data: Data, code: ExtractionError.Code) async {
        let error = await #expect(throws: ExtractionError.self) {
            _ = try await extractor.extract(data: data, name: name, mimeType: mimeType)
        }
        #expect(error?.code == code)
    }

    @Test func theExtractJobStoresTextOrErrorWithTheFile() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("good.pdf")
        try Self.pdf("Stored text").write(to: good)
        let bad = folder.appendingPathComponent("bad.pdf")
        try Data("%PDF-1.4 nope".utf8).write(to: bad)
        try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "f@example.com", name: "F", role: .user)
            func store(_ url: URL) async throws -> StoredFile {
                try await stores.files.createFile(NewFile(ownerID: user.id, name: url.lastPathComponent, mimeType: "application/pdf", size: 10, sha256: String(repeating: "0", count: 64), storagePath: url.path))
            }
            let goodFile = try await store(good)
            let badFile = try await store(bad)
            let job = FileExtraction(files: stores.files)
            #expect(try await job.run(fileID: goodFile.id) == .success("Stored text"))
            guard case .failure(let error) = try await job.run(fileID: badFile.id) else { Issue.record("a corrupt PDF was extracted"); return }
            #expect(error.code == .corrupt)
            let storedGood = try #require(try await stores.files.file(id: goodFile.id))
            #expect(storedGood.extractStatus == .done)
            #expect(storedGood.extractedText == "Stored text")
            let storedBad = try #require(try await stores.files.file(id: badFile.id))
            #expect(storedBad.extractStatus == .failed)
            #expect(storedBad.extractError?.hasPrefix("corrupt_file") == true)
        }
    }
}
