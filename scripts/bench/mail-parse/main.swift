// MIME parsing throughput of the Mail module compiled alone with -O (scripts/bench/mail-parse.sh):
// the same generated corpus as `switchboard-bench email`, parsed ROUNDS times, best round reported.
import Foundation

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 2_000 : 2_000
let rounds = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 5 : 5
let corpus = (0..<count).map { MailCorpus.mail($0) }
let bytes = corpus.reduce(0) { $0 + $1.count }
var best = Double.infinity
var checksum = 0
for _ in 0..<rounds {
    let start = ContinuousClock.now
    for raw in corpus { checksum &+= MIMEParser.parse(raw).text.utf8.count }
    let elapsed = ContinuousClock.now - start
    best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}
print(String(format: "parse only (-O): %.0f mails/s, %.1f MiB/s (%d mails, %.2f MiB, best of %d rounds; checksum %d)",
             Double(count) / best, Double(bytes) / 1_048_576 / best, count, Double(bytes) / 1_048_576, rounds, checksum))
