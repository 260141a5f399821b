#!/usr/bin/env bash
# Pipeline overhead per turn as a client sees it: from sending POST /api/v1/chats/{id}/messages
# to the first `chunk` event of the turn's SSE stream (GET /api/v1/messages/{id}/events), through
# a live api node and a worker running the handlers `serve` registers, over the Redis and MariaDB
# of scripts/services (a throw-away switchboard_test_* database and key prefix), with an instant
# scripted provider (its own time to first token is printed: ~0.01 ms). One turn at a time, then
# open loop at RATE turns/s (each turn timed from when it was due). `switchboard-bench pipeline`.
#
# The bench user has TOPICS topics (default 8, each with a description and five example phrases, as
# a deployment defines them), so the embedding router does its work on every turn; the run is made
# twice, with the router (ROUTER=on) and without it (off), and the difference printed. ROUTER=on or
# ROUTER=off runs one of them only.
#
# Usage: scripts/bench/pipeline.sh [TURNS] [RATE] [MODE]      (defaults: 1000, 200, post)
#   MODE post:   POST /api/v1/chats/{id}/messages, then GET the events link (two requests)
#   MODE stream: POST /api/v1/messages/stream (one request)
# TRANSPORT=unix (default, as scripts/run deploys) reaches Redis and MariaDB over their Unix
# sockets, TRANSPORT=tcp over TCP loopback (as servers on other machines would be reached).
# SWIFT overrides the swift command, BUILD_DIR the build folder (default .build), CONFIGURATION
# the build (release by default; debug where a release build is not at hand), SKIP_BUILD=1
# uses the binary already built, TIMELINE=FILE writes each open-loop turn's timings there as CSV
# (when it was due, its 202, first event and first chunk). SB_BENCH_PIPELINE_ALONE=1 also runs
# the RoutingPipeline-only measurement (run → first chunk, no api/Redis hops; the gated
# PipelineOverheadBenchmark suite).
# TRACING_ENDPOINT=URL turns tracing on (every turn sampled), exporting OTLP/HTTP to URL
# (scripts/bench/tracing.sh alternates runs with and without it against a receiver that drops).
set -euo pipefail
cd "$(dirname "$0")/../.."
SWIFT=${SWIFT:-swift}
BUILD_DIR=${BUILD_DIR:-.build}
TURNS=${1:-1000} RATE=${2:-200} MODE=${3:-post}
eval "$(./scripts/services start)"
case "${TRANSPORT:=unix}" in
  unix)
    [ -S "$SB_REDIS_SOCKET" ] || { echo "no Redis socket at $SB_REDIS_SOCKET (a Redis started by an older scripts/services): run scripts/services stop, or TRANSPORT=tcp" >&2; exit 1; }
    REDIS_URL="$SB_REDIS_URL?socket=$SB_REDIS_SOCKET" DATABASE_URL="$SB_DATABASE_URL?socket=$SB_MARIADB_SOCKET" ;;
  tcp) REDIS_URL=$SB_REDIS_URL DATABASE_URL=$SB_DATABASE_URL ;;
  *) echo "TRANSPORT is unix or tcp" >&2; exit 2 ;;
esac
echo "Redis and MariaDB over $TRANSPORT" >&2
CONFIGURATION=${CONFIGURATION:-release}
[ -n "${SKIP_BUILD:-}" ] || $SWIFT build -c "$CONFIGURATION" --product switchboard-bench >&2
BENCH=${BENCH:-$BUILD_DIR/$CONFIGURATION/switchboard-bench}
routers=${ROUTER:-on off}
declare -A sequential_p50
for router in $routers; do
  out=$("$BENCH" pipeline --redis "$REDIS_URL" --database "$DATABASE_URL" \
    --turns "$TURNS" --rate "$RATE" --mode "$MODE" --topics "${TOPICS:-8}" --router "$router" ${TIMELINE:+--timeline "$TIMELINE"} \
    ${TRACING_ENDPOINT:+--tracing-endpoint "$TRACING_ENDPOINT"} 2>&1 \
    | { grep -v "HummingbirdCore" || true; })
  echo "$out"
  sequential_p50[$router]=$(echo "$out" | sed -n 's/^1 turn at a time: .* p50=\([0-9.]*\) ms.*/\1/p' | head -1)
done
if [ -n "${sequential_p50[on]:-}" ] && [ -n "${sequential_p50[off]:-}" ]; then
  echo "embedding router's share, 1 turn at a time: p50 ${sequential_p50[on]} ms with it, ${sequential_p50[off]} ms without:" \
    "$(awk "BEGIN{printf \"%+.3f\", ${sequential_p50[on]} - ${sequential_p50[off]}}") ms"
fi

if [ -n "${SB_BENCH_PIPELINE_ALONE:-}" ]; then
  export SB_BENCH_PIPELINE=1 SB_BENCH_TURNS=$TURNS SB_BENCH_RATE=$RATE SB_TEST_LLM=0
  export SB_TEST_DATABASE_URL=${SB_TEST_DATABASE_URL:-$SB_DATABASE_URL}
  $SWIFT test ${SB_BENCH_CONFIGURATION:--c release} --filter PipelineOverheadBenchmark 2>&1 | grep -E "pipeline overhead|turns=|passed|failed"
fi
