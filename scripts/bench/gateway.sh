#!/usr/bin/env bash
# Gateway load benchmark: idle connections and memory, fan-out latency, sustained deliveries.
# Starts a release gateway (in-memory engine; pass --redis URL to use Redis) on loopback, drives it
# with `switchboard-bench gateway idle|fanout|throughput`, and prints one line per measurement.
# The load tool (NIO, one event loop thread) runs on the same machine; every line reports the CPU
# the server and the load tool used during the measurement.
#   scripts/bench/gateway.sh [--connections 10000] [--rate 30000] [--redis redis://127.0.0.1:6380/0?prefix=bench:]
#   scripts/bench/gateway.sh --abuse [--connections 10000] [--rate 1000] [--abusive-percent 1]
# --abuse measures the well-behaved subscribers' publish → deliver latency alone, then with a
# share of misbehaving connections (flooding commands, oversized frames, no pongs, forbidden
# subscribes) added, against a gateway with the default command rate limit (100/s, burst 500),
# pings every 5 s (8 s to answer) and a `secret` namespace clients may not subscribe to; it checks
# the close codes each kind gets and fails when one is wrong (`switchboard-bench gateway abuse`).
# SB_BENCH_BIN names an already built release switchboard-bench (skips the build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CONNECTIONS=10000
REDIS=""
RATE=30000
ABUSE=""
ABUSIVE_PERCENT=1
SECONDS_PER_PHASE=15
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) CONNECTIONS=$2; shift 2 ;;
    --redis) REDIS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --abuse) ABUSE=1; shift ;;
    --abusive-percent) ABUSIVE_PERCENT=$2; shift 2 ;;
    --seconds) SECONDS_PER_PHASE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
BIN=${SB_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  swift build -c release --product switchboard-bench >/dev/null
  BIN=$(swift build -c release --show-bin-path)/switchboard-bench
fi
PORT=${SB_BENCH_GATEWAY_PORT:-18700}
export SB_GATEWAY_CONFIG_JSON='{"token_secret":"bench-secret","client_command_rate":0,"namespaces":[{"name":"bench","allow_subscribe_for_client":true,"allow_publish_for_client":true}]}'
if [ -n "$ABUSE" ]; then
  export SB_GATEWAY_CONFIG_JSON='{"token_secret":"bench-secret","client_command_rate":100,"client_command_burst":500,"ping_interval":5,"pong_timeout":8,"namespaces":[{"name":"bench","allow_subscribe_for_client":true,"allow_publish_for_client":true},{"name":"secret"}]}'
fi
"$BIN" gateway serve --port "$PORT" ${REDIS:+--redis "$REDIS"} --log-level error &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

if [ -n "$ABUSE" ]; then
  [ "$RATE" = 30000 ] && RATE=1000
  echo "== gateway under misbehaving clients ($(nproc) cores, $CONNECTIONS connections, ${ABUSIVE_PERCENT}% misbehaving, engine: ${REDIS:+redis}${REDIS:-memory}, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$BIN" gateway abuse --port "$PORT" --channels 1000 --subscribers "$CONNECTIONS" --seconds "$SECONDS_PER_PHASE" --rate "$RATE" \
    --abusive-percent "$ABUSIVE_PERCENT" --server-pid "$SERVER"
  exit
fi
echo "== gateway benchmark ($(nproc) cores, $CONNECTIONS connections, engine: ${REDIS:+redis}${REDIS:-memory})"
"$BIN" gateway idle --port "$PORT" --connections "$CONNECTIONS" --hold 10 --server-pid "$SERVER"
"$BIN" gateway fanout --port "$PORT" --subscribers "$CONNECTIONS" --publications 20 --server-pid "$SERVER"
# Throughput twice: with few publishes outstanding (publish → ack stays short), then with many
# (models many concurrent publishers; deliveries queue up per connection and share frames).
"$BIN" gateway throughput --port "$PORT" --channels 1000 --subscribers "$CONNECTIONS" --seconds 10 --rate "$RATE" --in-flight 2000 --server-pid "$SERVER"
"$BIN" gateway throughput --port "$PORT" --channels 1000 --subscribers "$CONNECTIONS" --seconds 10 --rate "$RATE" --in-flight 20000 --server-pid "$SERVER"
