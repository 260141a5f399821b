#!/usr/bin/env bash
# The machine's floor for the gateway benchmarks (docs/benchmarks/gateway.md): plain C writing one
# small frame per write() to many loopback TCP sockets, read back by a process on the same machine.
# Compiles scripts/bench/socket-floor.c with gcc into var/bench, then runs
#   fan-out:    one frame to each of N sockets, ROUNDS times 100 ms apart (latency p50/p99/max,
#               writer wall time and CPU per write), then the same through io_uring (one writer
#               thread, 1,024 sends per io_uring_enter, as the gateway's fan-out sends)
#   throughput: THREADS writer threads writing frames round-robin to N sockets for 10 s, one frame
#               per write() and then 4 per write() (write() calls/s, frames read/s, CPU per frame)
#   scripts/bench/socket-floor.sh [N=10000] [ROUNDS=20] [THREADS=1]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-10000}
ROUNDS=${2:-20}
THREADS=${3:-1}
SECONDS_=${SB_FLOOR_SECONDS:-10}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -le $((N + 100)) ]; then
  echo "need more than $((N + 100)) open files (ulimit -n is $(ulimit -n))" >&2
  exit 1
fi
mkdir -p "$ROOT/var/bench"
BIN=$ROOT/var/bench/socket-floor
gcc -O2 -Wall -pthread -o "$BIN" "$ROOT/scripts/bench/socket-floor.c"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" fanout "$N" "$ROUNDS" "$THREADS"
SB_FLOOR_IO_URING=1 "$BIN" fanout "$N" "$ROUNDS" 1
"$BIN" throughput "$N" "$SECONDS_" "$THREADS" 1
"$BIN" throughput "$N" "$SECONDS_" "$THREADS" 4
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
