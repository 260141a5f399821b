#!/usr/bin/env bash
# Inbound email throughput: MIME parsing alone, and parse + thread + store + queue through the
# email channel (EmailReceiver over MariaDB and Redis), from a corpus of MAILS generated, varied
# mails, beside the ingest of as many plain JSON webhook messages (decode + the channel intake,
# WhatsApp's path) in the same run, on the same servers, at the same concurrency.
# `switchboard-bench email`; a throw-away switchboard_test_bench_* database and Redis key prefix.
#
# Usage: scripts/bench/email.sh [MAILS] [CONCURRENCY]      (defaults: 2000, 8)
# SKIP_BUILD=1 uses the release binary already built.
set -euo pipefail
cd "$(dirname "$0")/../.."
MAILS=${1:-2000} CONCURRENCY=${2:-8}
eval "$(./scripts/services start)"
if [ -z "${SKIP_BUILD:-}" ]; then swift build -c release --product switchboard-bench >&2; fi
.build/release/switchboard-bench email --db "$SB_DATABASE_URL" --redis "$SB_REDIS_URL" --mails "$MAILS" --concurrency "$CONCURRENCY"
