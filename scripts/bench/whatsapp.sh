#!/usr/bin/env bash
# WhatsApp webhook ingest (signature check on the raw body, parse, store, queue the turn) against
# the API's own message POST, in the same run, on the same server, with the same load: wrk with
# 2 threads and 64 connections, each request a new message (WhatsApp: a new wamid from one
# contact, so one chat, like the API's existing-chat route). Bodies are signed beforehand.
#
#   scripts/bench/whatsapp.sh [seconds per wrk run, default 15]
#
# Needs the services (scripts/services start) and Debian's `wrk`. Uses the test bundle's
# APIBenchmarkServer (one api node and one worker with the instant echo responder on a throw-away
# database). CONFIG=debug uses the debug build (default release); SKIP_BUILD=1 skips building;
# ORDER=whatsapp-first swaps the two runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
SWIFT=${SWIFT:-swift}
DURATION=${1:-15}
CONFIG=${CONFIG:-release}
BODIES=${BODIES:-60000}
if ! command -v wrk >/dev/null; then   # the load tool, from Debian
  [ "$(id -u)" -eq 0 ] || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  if [ "$CONFIG" = release ]; then $SWIFT build -c release --build-tests -Xswiftc -enable-testing >&2; else $SWIFT build --build-tests >&2; fi
fi

info=$(mktemp) stop=$(mktemp -u) bodies=$(mktemp)
: > "$info"
BUILD_DIR=${BUILD_DIR:-.build}
SB_API_BENCH_INFO=$info SB_API_BENCH_STOP=$stop \
  "$BUILD_DIR/$CONFIG/switchboardPackageTests.xctest" --testing-library swift-testing --filter APIBenchmarkServer \
  >/tmp/sb-whatsapp-bench-server.log 2>&1 &
server=$!
trap 'touch "$stop"; wait $server 2>/dev/null || true; rm -f "$info" "$stop" "$bodies"' EXIT
for _ in $(seq 1 1500); do [ -s "$info" ] && break; sleep 0.2; done
[ -s "$info" ] || { echo "the benchmark server did not start; see /tmp/sb-whatsapp-bench-server.log" >&2; exit 1; }
read -r port key < "$info"
base=http://127.0.0.1:$port
export SB_BENCH_KEY=$key SB_BENCH_WA_BODIES=$bodies
secret="bench-app-secret-$RANDOM$RANDOM"

webhook=$(curl -sf -X POST "$base/api/v1/channels" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"type\":\"whatsapp\",\"name\":\"bench\",\"phoneNumberId\":\"1\",\"accessToken\":\"t\",\"appSecret\":\"$secret\",\"verifyToken\":\"v\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhookUrl"])')
python3 - "$secret" "$BODIES" > "$bodies" <<'PY'
import hashlib, hmac, sys
secret, count = sys.argv[1].encode(), int(sys.argv[2])
for n in range(count):
    body = ('{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",'
            '"metadata":{"phone_number_id":"1"},"contacts":[{"profile":{"name":"Bench"},"wa_id":"15550001"}],"messages":[{"from":"15550001",'
            f'"id":"wamid.BENCH{n}","timestamp":"1700000000","type":"text","text":{{"body":"benchmark message {n}"}}}}]}}}}]}}]}}')
    print("sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest() + "\t" + body)
PY
chat=$(curl -sf -X POST "$base/api/v1/chats" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d '{"title":"bench"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "# build: $CONFIG; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
api() {
  echo "## POST /api/v1/chats/$chat/messages (the API, existing chat), 64 connections, ${DURATION}s"
  wrk -t2 -c64 -d"${DURATION}s" --latency -s scripts/bench/api-post.lua "$base/api/v1/chats/$chat/messages"
}
whatsapp() {
  echo "## POST $webhook (WhatsApp webhook, signed, one contact), 64 connections, ${DURATION}s"
  wrk -t2 -c64 -d"${DURATION}s" --latency -s scripts/bench/whatsapp-post.lua "$base$webhook"
}
# ORDER=whatsapp-first runs the webhook first: the second run shares the cores with the worker
# still draining the first run's turns.
if [ "${ORDER:-api-first}" = whatsapp-first ]; then whatsapp; echo; sleep 5; api; else api; echo; sleep 5; whatsapp; fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
