#!/usr/bin/env bash
# Open turn streams at scale (issue 22): STREAMS concurrent `GET /api/v1/messages/{id}/events` on
# one api node, ACTIVE of them receiving a token stream at RATE tokens/s written straight into the
# turn streams with XADD (as the worker writes them). Prints, at ACTIVE open streams and then at
# STREAMS: event -> client latency p50/p99, Redis's connected_clients and blocked_clients (and how
# many of them are the api's), the api's RSS and CPU; then the RSS per added stream and the p99
# ratio. `switchboard-bench sse serve` is the api node (its own process, so its RSS is its own),
# `switchboard-bench sse load` the clients and the token writer.
#
# Usage: scripts/bench/sse.sh [STREAMS] [ACTIVE] [RATE]        (defaults: 10000, 100, 25)
# Runs its own redis-server on SB_BENCH_REDIS_PORT (default 6393; data under var/bench-sse, gone
# afterwards) so the client counts are this benchmark's alone; MariaDB from SB_DATABASE_URL
# (default the one of scripts/services, a throw-away switchboard_test_bench_sse_* database).
# SB_BENCH_BIN names an already built switchboard-bench (else a release build is made).
# SECONDS_PER_WINDOW (default 20) is each latency window, SETTLE (default 12) the wait after
# opening the streams (longer than the hub's 10 s hotIdle, so idle turns have left the hot reader).
# HEARTBEAT (default 15) is the api's heartbeat interval in seconds, COLD_BLOCK_MS (default 30000)
# the hub's cold reader's XREAD BLOCK; SSE_BARE=1 then also measures
# the floor: the same Hummingbird server holding STREAMS streaming responses that only wait.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STREAMS=${1:-10000} ACTIVE=${2:-100} RATE=${3:-25}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NEED=$((STREAMS + 1000))  # per process: the api, the load generator and Redis each hold one socket per stream
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
  echo "ulimit -n is $(ulimit -n); $NEED file descriptors per process are needed" >&2; exit 1
fi
BIN=${SB_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  swift build -c release --product switchboard-bench >&2
  BIN=$(swift build -c release --show-bin-path)/switchboard-bench
fi
PORT=${SB_BENCH_REDIS_PORT:-6393}
DIR=$ROOT/var/bench-sse
DATABASE_URL=${SB_DATABASE_URL:-mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard}
REDIS_URL=redis://127.0.0.1:$PORT/0
PLAN=$DIR/plan.json
mkdir -p "$DIR"
rm -f "$PLAN"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --dir "$DIR" \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --maxclients $((STREAMS + 1000))
SERVER=""
cleanup() {
  rm -f "$PLAN"
  [ -n "$SERVER" ] && { wait "$SERVER" 2>/dev/null || true; }
  [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== sse benchmark ($(nproc) cores, $STREAMS streams, $ACTIVE active at $RATE tokens/s, $(redis-server --version | cut -d' ' -f3))"
"$BIN" sse serve --redis "$REDIS_URL" --database "$DATABASE_URL" --streams "$STREAMS" --plan "$PLAN" --heartbeat "${HEARTBEAT:-15}" --cold-block-ms "${COLD_BLOCK_MS:-30000}" &
SERVER=$!
for _ in $(seq 1200); do [ -f "$PLAN" ] && break; kill -0 "$SERVER" 2>/dev/null || exit 1; sleep 0.25; done
[ -f "$PLAN" ] || { echo "the api node did not get ready" >&2; exit 1; }
"$BIN" sse load --plan "$PLAN" --redis "$REDIS_URL" --active "$ACTIVE" --streams "$STREAMS" --rate "$RATE" \
  --seconds "${SECONDS_PER_WINDOW:-20}" --settle "${SETTLE:-12}"

if [ -n "${SSE_BARE:-}" ]; then
  # The floor: the same Hummingbird server holding STREAMS streaming responses that only wait.
  rm -f "$PLAN"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  "$BIN" sse serve --bare --streams "$STREAMS" --plan "$PLAN" &
  SERVER=$!
  for _ in $(seq 200); do [ -f "$PLAN" ] && break; sleep 0.1; done
  echo "== floor: Hummingbird holding $STREAMS streaming responses that only wait (no auth, hub, Redis, database)"
  "$BIN" sse load --plan "$PLAN" --redis "$REDIS_URL" --active 0 --streams "$STREAMS" --seconds 1 --settle 1 | grep -E "^(start|result|opened)"
fi
