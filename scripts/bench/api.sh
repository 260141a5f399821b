#!/usr/bin/env bash
# POST→202 throughput and latency of the public API with 64 concurrent clients (wrk), and the time
# from a POST to the first SSE event of its turn with the instant echo responder.
#
#   scripts/bench/api.sh [seconds per wrk run, default 20]
#
# Needs the services (scripts/services start) and Debian's `wrk`. Builds the release test bundle,
# whose APIBenchmarkServer "test" runs one api node and one worker (4 slots) on a throw-away
# database when SB_API_BENCH_INFO is set. SWIFT overrides the swift command, BUILD_DIR the build folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
SWIFT=${SWIFT:-swift}
DURATION=${1:-20}
if ! command -v wrk >/dev/null; then   # the load tool, from Debian
  [ "$(id -u)" -eq 0 ] || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

[ -n "${SKIP_BUILD:-}" ] || $SWIFT build -c release --build-tests -Xswiftc -enable-testing >&2

info=$(mktemp) stop=$(mktemp -u)
: > "$info"
# The test bundle is run directly (no second SwiftPM invocation to wait for).
BUILD_DIR=${BUILD_DIR:-.build}
SB_API_BENCH_INFO=$info SB_API_BENCH_STOP=$stop \
  "$BUILD_DIR/release/switchboardPackageTests.xctest" --testing-library swift-testing --filter APIBenchmarkServer \
  >/tmp/sb-api-bench-server.log 2>&1 &
server=$!
trap 'touch "$stop"; wait $server 2>/dev/null || true; rm -f "$info" "$stop"' EXIT
for _ in $(seq 1 1500); do [ -s "$info" ] && break; sleep 0.2; done
[ -s "$info" ] || { echo "the benchmark server did not start; see /tmp/sb-api-bench-server.log" >&2; exit 1; }
read -r port key < "$info"
base=http://127.0.0.1:$port
export SB_BENCH_KEY=$key

chat=$(curl -sf -X POST "$base/api/v1/chats" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d '{"title":"bench"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "## POST /api/v1/chats/$chat/messages (existing chat), 64 connections, ${DURATION}s"
wrk -t2 -c64 -d"${DURATION}s" --latency -s scripts/bench/api-post.lua "$base/api/v1/chats/$chat/messages"
echo
echo "## POST /api/v1/messages (new chat per message), 64 connections, ${DURATION}s"
wrk -t2 -c64 -d"${DURATION}s" --latency -s scripts/bench/api-post.lua "$base/api/v1/messages"
echo
echo "## POST → first SSE event, one client at a time, instant responder"
sleep 5  # let the worker drain the turns queued above
python3 scripts/bench/api_first_event.py --port "$port" --key "$key" --samples 300
