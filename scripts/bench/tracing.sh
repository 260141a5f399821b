#!/usr/bin/env bash
# The cost of tracing on the pipeline benchmark (scripts/bench/pipeline.sh): PAIRS pairs of runs,
# tracing off then on, alternated so that the machine's load drifts over both alike. With tracing
# on every turn is sampled and its spans are exported over OTLP/HTTP to a local receiver that
# decodes nothing and drops everything (Tests/Interop/tracing/otlp_receiver.py, run as a script).
# Prints each run's lines and the load average before each run.
#
# Usage: scripts/bench/tracing.sh [PAIRS] [TURNS] [RATE]     (defaults: 3, 300, 100)
# SKIP_BUILD=1 uses the switchboard-bench already built; CONFIGURATION=debug the debug build; other
# variables as pipeline.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS=${1:-3} TURNS=${2:-300} RATE=${3:-100}
SWIFT=${SWIFT:-swift}
PYTHON=$(./scripts/python-env)
[ -n "${SKIP_BUILD:-}" ] || $SWIFT build -c "${CONFIGURATION:-release}" --product switchboard-bench >&2
export SKIP_BUILD=1

receiver_log=$(mktemp)
"$PYTHON" Tests/Interop/tracing/otlp_receiver.py >"$receiver_log" 2>&1 &
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -f "$receiver_log"' EXIT
for _ in $(seq 50); do [ -s "$receiver_log" ] && break; sleep 0.1; done
endpoint=$(head -1 "$receiver_log")
echo "receiver (drops everything): $endpoint"

for pair in $(seq "$PAIRS"); do
  for mode in off on; do
    echo "== pair $pair, tracing $mode, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$mode" = on ]; then
      ROUTER=on TRACING_ENDPOINT=$endpoint ./scripts/bench/pipeline.sh "$TURNS" "$RATE" post
    else
      ROUTER=on ./scripts/bench/pipeline.sh "$TURNS" "$RATE" post
    fi
  done
done
kill -TERM $receiver 2>/dev/null || true
wait $receiver 2>/dev/null || true
tail -1 "$receiver_log"
