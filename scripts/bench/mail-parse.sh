#!/usr/bin/env bash
# MIME parsing throughput of the Mail module, compiled alone with swiftc -O (seconds, without a
# release build of the whole package): the corpus of `switchboard-bench email`, parsed in rounds.
#
# Usage: scripts/bench/mail-parse.sh [MAILS] [ROUNDS]      (defaults: 2000, 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p var
swiftc -O -module-name MailParseBench Sources/Mail/*.swift Sources/SwitchboardBench/MailCorpus.swift scripts/bench/mail-parse/main.swift \
  -o var/mail-parse-bench
var/mail-parse-bench "${1:-2000}" "${2:-5}"
