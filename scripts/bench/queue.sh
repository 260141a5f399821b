#!/usr/bin/env bash
# Queue benchmark: Switchboard's no-op jobs per second end to end (1 and 2 worker processes) and
# enqueue→start latency, then, on the same Redis in the same run, Celery (Redis broker, no-op
# task, same concurrency) and raw `redis-benchmark -P 16` XADD, with ratios.
#
#   scripts/bench/queue.sh                      # Redis from scripts/services (127.0.0.1:6380)
#   REDIS_URL=redis://127.0.0.1:6380/0 JOBS=200000 CONCURRENCY=64 CELERY_JOBS=20000 scripts/bench/queue.sh
#   SKIP_BUILD=1 ...                            # reuse .build/release/switchboard-bench
#   SKIP_CELERY=1 ...                           # Switchboard and redis-benchmark only
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6380/0}
JOBS=${JOBS:-200000}
CONCURRENCY=${CONCURRENCY:-64}
BATCH=${BATCH:-256}
CELERY_JOBS=${CELERY_JOBS:-20000}
hostport=${REDIS_URL#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
REDIS_HOST=${hostport%%:*}; REDIS_PORT=${hostport##*:}

redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping >/dev/null || { echo "no Redis at $REDIS_URL (scripts/services start)" >&2; exit 1; }

cd "$ROOT"
if [ -z "${SKIP_BUILD:-}" ]; then swift build -c release --product switchboard-bench >&2; fi
BIN=${BIN:-$ROOT/.build/release/switchboard-bench}

# Copies lines to stderr as they come (the caller sees progress) and passes them on.
show() { while IFS= read -r line; do printf '%s\n' "$line" >&2; printf '%s\n' "$line"; done; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, redis $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server | sed -n 's/^redis_version:\(.*\)\r/\1/p')"
out=$("$BIN" queue bench --redis "$REDIS_URL" --jobs "$JOBS" --concurrency "$CONCURRENCY" --batch "$BATCH" --workers 1,2 | show)
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
sb1=$(echo "$out" | grep 'queue.noop workers=1 ' | field jobs_per_sec)
sb2=$(echo "$out" | grep 'queue.noop workers=2 ' | field jobs_per_sec)

# Raw XADD ceiling of this Redis (pipelined 16 deep), on a key of its own.
rbkey="sbbench:rb:$$"
rb=$(redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -n 500000 -P 16 -q XADD "$rbkey" '*' f v | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del "$rbkey" >/dev/null
echo "redis-benchmark.xadd pipeline=16 requests_per_sec=$rb" >&2

best_celery=""
if [ -z "${SKIP_CELERY:-}" ]; then
  CELERY_DIR=$ROOT/scripts/bench/celery
  if [ ! -x "$CELERY_DIR/.venv/bin/celery" ]; then
    python3 -m venv "$CELERY_DIR/.venv"
    "$CELERY_DIR/.venv/bin/pip" install -q celery redis packaging >&2
  fi
  echo "# celery $("$CELERY_DIR/.venv/bin/celery" --version)" >&2
  for setup in "threads $CONCURRENCY" "prefork $(nproc)"; do
    # shellcheck disable=SC2086
    line=$(cd "$CELERY_DIR" && BENCH_REDIS_URL=$REDIS_URL BENCH_JOBS=$CELERY_JOBS .venv/bin/python bench.py $setup | show)
    rate=$(echo "$line" | field jobs_per_sec)
    if [ -z "$best_celery" ] || awk "BEGIN{exit !($rate > $best_celery)}"; then best_celery=$rate; fi
  done
fi

ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.1f\", $1 / $2; else print \"n/a\" }"; }
echo
echo "switchboard 1 worker:  $sb1 jobs/s"
echo "switchboard 2 workers: $sb2 jobs/s"
echo "redis-benchmark XADD -P 16: $rb req/s  (switchboard 2 workers = $(awk "BEGIN{printf \"%.1f\", 100 * $sb2 / $rb}")% of raw XADD)"
if [ -n "$best_celery" ]; then
  echo "celery (best pool):    $best_celery jobs/s"
  echo "ratio switchboard/celery: 1 worker $(ratio "$sb1" "$best_celery")x, 2 workers $(ratio "$sb2" "$best_celery")x"
fi
