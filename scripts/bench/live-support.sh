#!/usr/bin/env bash
# Live-support latency (docs/benchmarks.md, "Live support"): visitor message -> operator
# notification and operator reply -> visitor, against a bare gateway publish -> deliver in the
# same run, through real `switchboard api` and `gateway` processes and centrifuge-python clients.
#   scripts/bench/live-support.sh [--n 1000]
# Uses the release binary (built here unless SB_GATEWAY_CMD names one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
eval "$(./scripts/services start)"
export SB_TEST_REDIS_URL=$SB_REDIS_URL SB_TEST_DATABASE_URL=$SB_DATABASE_URL
./scripts/python-env >/dev/null
if [ -z "${SB_GATEWAY_CMD:-}" ]; then
  swift build -c release --product switchboard >/dev/null
  export SB_GATEWAY_CMD="$(swift build -c release --show-bin-path)/switchboard gateway"
fi
exec var/venv/bin/python scripts/bench/live_support.py "$@"
