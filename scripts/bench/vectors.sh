#!/usr/bin/env bash
# Exact top-10 over N × DIM float32 vectors of one owner, one query at a time on one thread:
# Switchboard's in-process index (Files.VectorIndex, SIMD dot products) against faiss-cpu's
# IndexFlatIP and numpy (both from PyPI) on the same vectors and queries, in one run; checks that
# Switchboard returns the same top-10 ids as numpy for every query. Then the index throughput
# (chunks per second through chunking, embedding by the local model server, and storing), with the
# embedding time shown separately (needs scripts/services and scripts/llm).
#
# Usage: scripts/bench/vectors.sh [N] [QUERIES]          (defaults: 100000, 200)
# Env:   BENCH_BIN   an already built switchboard-bench for the index throughput (skips the release build)
#        SKIP_INDEX=1  leaves out the index throughput run
#        INT8=1       also measures an int8-quantized first pass re-ranked in float32 (INT8_CANDIDATES, 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100000}
queries=${2:-200}
dim=384
venv=var/venv-vectors
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import faiss, numpy, threadpoolctl' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/bench/requirements-vectors.txt >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The index as the server compiles it (-O), without building the whole package: Storage's vector
# file as module Storage, then Files' VectorIndex.swift with the benchmark's main.
swiftc -O -parse-as-library -module-name Storage -emit-module -emit-module-path "$work/Storage.swiftmodule" \
  -emit-library -static -o "$work/libStorage.a" Sources/Storage/Vectors.swift scripts/bench/vector-search/DatabaseErrorShim.swift
swiftc -O -I "$work" -L "$work" -lStorage -o "$work/vector-search" Sources/Files/VectorIndex.swift \
  scripts/bench/vector-search/Int8FirstPass.swift scripts/bench/vector-search/main.swift
"$venv/bin/python" scripts/bench/vectors.py generate "$n" "$dim" "$queries" "$work"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
int8=()
# INT8=1: also the int8-quantized first pass (INT8_CANDIDATES rows re-ranked in float32), checked against numpy too.
if [ "${INT8:-0}" = 1 ]; then int8=(--int8-out "$work/int8.ids" --candidates "${INT8_CANDIDATES:-100}"); fi
taskset -c 0 "$work/vector-search" --vectors "$work/vectors.f32" --queries "$work/queries.f32" --dim "$dim" --k 10 --out "$work/swift.ids" "${int8[@]}"
# One thread for faiss (omp) and numpy (threadpoolctl); OPENBLAS_CORETYPE unset for numpy in this run only.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 DIM=$dim \
  taskset -c 0 "$venv/bin/python" scripts/bench/vectors.py compare "$work" 10 "$work/swift.ids"
if [ "${INT8:-0}" = 1 ]; then
  echo "int8 first pass against numpy:"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 DIM=$dim \
    taskset -c 0 "$venv/bin/python" scripts/bench/vectors.py compare "$work" 10 "$work/int8.ids" | grep '^ids'
fi
if [ "${SKIP_INDEX:-0}" != 1 ]; then
  if [ -z "${BENCH_BIN:-}" ]; then
    swift build -c release --product switchboard-bench >&2
    BENCH_BIN=.build/release/switchboard-bench
  fi
  model=$(./scripts/llm)
  "$BENCH_BIN" index-throughput --model-url "$model" --paragraphs 1000 --batch 16 \
    --database "${SB_BENCH_DATABASE_URL:-mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard}"
fi
