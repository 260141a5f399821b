#!/usr/bin/env bash
# Pipeline overhead per turn with an instant (scripted) provider: the time from RoutingPipeline.run
# to the first `chunk` event — classification (cached rules, topic lookup, sorter), task rows in
# MariaDB, the executor — one turn at a time, then open-loop at SB_BENCH_RATE turns/s.
# Runs the gated PipelineOverheadBenchmark suite in a release build against the MariaDB of
# scripts/services (a throw-away switchboard_test_* database).
#
# Usage: scripts/bench/pipeline.sh [TURNS] [RATE]      (defaults: 1000, 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
export SB_BENCH_PIPELINE=1 SB_BENCH_TURNS=${1:-1000} SB_BENCH_RATE=${2:-200} SB_TEST_LLM=0
eval "$(./scripts/services start)"
export SB_TEST_DATABASE_URL=${SB_TEST_DATABASE_URL:-$SB_DATABASE_URL}
swift test ${SB_BENCH_CONFIGURATION:--c release} --filter PipelineOverheadBenchmark 2>&1 | grep -E "pipeline overhead|turns=|passed|failed"
