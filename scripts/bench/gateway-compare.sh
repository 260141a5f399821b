#!/usr/bin/env bash
# The gateway side by side with the machine's floor and with nchan (docs/benchmarks/gateway.md,
# "Side by side with nchan"). In one go, RUNS times in a rotating order, it measures
#   floor   scripts/bench/socket-floor.c: one write() per frame to N loopback sockets (fan-out)
#   floor-uring  the same frames through io_uring (SB_FLOOR_IO_URING=1: 1,024 sends per
#           io_uring_enter), as the gateway's fan-out sends them where the kernel allows it
#   memory  the gateway, in-memory engine          (switchboard-bench gateway serve)
#   redis   the gateway, Redis engine              (… serve --redis URL, a fresh key prefix per run)
#   nchan   Debian's nginx + libnginx-mod-nchan, one worker, scripts/bench/nchan/nginx.conf
#   uni     the gateway, in-memory engine, its subscribers on /connection/uni_websocket (the
#           connect request in the URL, the channel in the token: no commands, like nchan's)
#   sse     the same, its subscribers `EventSource` streams on /connection/uni_sse
#   nchan-sse  nchan as above, its subscribers EventSource streams on the same /sub/{channel}
#   nio-floor  a SwiftNIO server with no protocol (switchboard-bench gateway nio-floor): it answers
#           each connection's request with a canned 101 (WebSocket) or event-stream head, so its
#           CPU per new connection is what NIO's channel machinery costs before any of the gateway's
#           own work; measured with nchan's subscribers, WebSocket then EventSource
#   epoll-floor  the same canned answers from a Swift event loop of its own (switchboard-bench
#           gateway epoll-floor: edge-triggered epoll, one registration and one read per
#           connection, as nginx does): what a socket layer of the gateway's own could cost;
#           then with --replies (canned connect and subscribe replies too), driven like the
#           gateway: the kernel's part of the client protocol's exchange, with no protocol work
# each started fresh, pinned to one core (taskset -c $SB_COMPARE_SERVER_CPU, default 0) with the
# load tool / the floor's reader pinned to another ($SB_COMPARE_LOAD_CPU, default 1). Against the
# gateway and nchan the same load tool (switchboard-bench gateway idle|fanout|throughput, with
# --target nchan for nchan) measures: server RSS per idle WebSocket connection and server CPU per
# new connection (N connections, each subscribed to a channel of its own), fan-out of one channel
# to N subscribers (p50/p99 publish → read, server CPU per delivery), and for both gateway
# engines deliveries/s with ≤ 2,000 publishes outstanding over N/10 channels (publish → deliver p99
# alongside). The gateway namespace keeps 100 publications of history for 5 minutes and nchan's
# channels a 100-message buffer for 5 minutes. Prints every measurement line, then a table of
# ratios (a row per run, then the median of each column), with the load average at start and end,
# a second one for the unidirectional endpoint against nchan (idle connections and fan-out), a
# third for the gateway's EventSource streams against nchan's, a fourth for CPU per new
# connection against NIO's floor, a fifth against the epoll floor and a sixth for the fan-out
# against the io_uring floor. `--targets` runs a subset (a table
# whose targets did not run shows `?`).
#
#   scripts/bench/gateway-compare.sh [--subscribers 10000] [--runs 3] [--publications 20]
#                                    [--hold 5] [--seconds 10] [--rate 30000]
#                                    [--targets floor,floor-uring,memory,redis,nchan,uni,sse,nchan-sse,nio-floor,epoll-floor]
#                                    [--redis 'redis://127.0.0.1:6380/0?prefix=bench:']
# SB_BENCH_BIN names an already built release switchboard-bench (skips the build). Installs nginx
# and libnginx-mod-nchan with apt if missing (never starts or touches the system nginx).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SUBSCRIBERS=10000
RUNS=3
PUBLICATIONS=20
HOLD=5
SECONDS_=10
RATE=30000
REDIS='redis://127.0.0.1:6380/0?prefix=bench:'
TARGETS=(floor floor-uring memory redis nchan uni sse nchan-sse nio-floor epoll-floor)
while [ $# -gt 0 ]; do
  case "$1" in
    --subscribers) SUBSCRIBERS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --publications) PUBLICATIONS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --redis) REDIS=$2; shift 2 ;;
    --targets) IFS=, read -r -a TARGETS <<<"$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SERVER_CPU=${SB_COMPARE_SERVER_CPU:-0}
LOAD_CPU=${SB_COMPARE_LOAD_CPU:-1}
GATEWAY_PORT=${SB_BENCH_GATEWAY_PORT:-18700}
NCHAN_PORT=${SB_BENCH_NCHAN_PORT:-18710}
CHANNELS=$(( SUBSCRIBERS / 10 > 0 ? SUBSCRIBERS / 10 : 1 ))

log() { printf '[compare] %s\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# nginx + nchan, like scripts/services installs its packages. policy-rc.d or not, the system
# nginx is never started by this script; ours runs in the foreground from a scratch directory.
PACKAGES=(nginx libnginx-mod-nchan)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || { log "need root to install ${missing[*]} (or install them yourself)"; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -le $((SUBSCRIBERS + 100)) ]; then
  log "need more than $((SUBSCRIBERS + 100)) open files (ulimit -n is $(ulimit -n))"
  exit 1
fi
[ "$(nproc)" -gt "$(( SERVER_CPU > LOAD_CPU ? SERVER_CPU : LOAD_CPU ))" ] || { log "CPUs $SERVER_CPU and $LOAD_CPU are not both online"; exit 1; }

BIN=${SB_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  swift build -c release --product switchboard-bench >/dev/null
  BIN=$(swift build -c release --show-bin-path)/switchboard-bench
fi
mkdir -p var/bench
FLOOR=$ROOT/var/bench/socket-floor
gcc -O2 -Wall -pthread -o "$FLOOR" scripts/bench/socket-floor.c
if ! redis-cli -u "${REDIS%%\?*}" ping 2>/dev/null | grep -q PONG; then
  scripts/services start >/dev/null
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gateway-compare.XXXXXX")
SERVER=""
# stop_server: SIGTERM, again after 10 s (one was seen to go unanswered while a profiler had been
# attached), SIGKILL after 20 s, so a set never hangs on a server that does not stop.
stop_server() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    local waited=0
    while kill -0 "$SERVER" 2>/dev/null && [ "$waited" -lt 200 ]; do
      sleep 0.1
      waited=$((waited + 1))
      if [ "$waited" -eq 100 ]; then
        log "server $SERVER still running 10 s after SIGTERM; sending it again"
        kill "$SERVER" 2>/dev/null || true
      fi
    done
    if kill -0 "$SERVER" 2>/dev/null; then
      log "server $SERVER still running 20 s after SIGTERM; killing it"
      kill -9 "$SERVER" 2>/dev/null || true
    fi
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

wait_http() {
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.2; done
  log "nothing answers on port $1"; exit 1
}
load() { taskset -c "$LOAD_CPU" "$BIN" gateway "$@"; }
# gateway_server REDIS_URL: a fresh gateway (in-memory engine when the URL is empty) in $SERVER.
gateway_server() {
  SB_GATEWAY_CONFIG_JSON='{"token_secret":"bench-secret","client_command_rate":0,"namespaces":[{"name":"bench","allow_subscribe_for_client":true,"allow_publish_for_client":true,"history_size":100,"history_ttl":"5m"}]}' \
    taskset -c "$SERVER_CPU" "$BIN" gateway serve --port "$GATEWAY_PORT" ${1:+--redis "$1"} --log-level error >/dev/null &
  SERVER=$!
  wait_http "$GATEWAY_PORT"
}

# One measurement of TARGET in run RUN: its lines go to the terminal and to $WORK/RUN-TARGET.
measure() {
  local run=$1 target=$2 out=$WORK/$1-$2
  echo "-- run $run: $target (load average $(loadavg))"
  case "$target" in
    floor|floor-uring)
      local ring=0
      [ "$target" = floor-uring ] && ring=1
      SB_FLOOR_IO_URING=$ring SB_FLOOR_READER_CPU=$LOAD_CPU taskset -c "$SERVER_CPU" "$FLOOR" fanout "$SUBSCRIBERS" "$PUBLICATIONS" 1 | tee "$out"
      ;;
    uni|sse)
      gateway_server ""
      {
        load idle --port "$GATEWAY_PORT" --connections "$SUBSCRIBERS" --hold "$HOLD" --subscribe --transport "$target" --server-pid "$SERVER"
        load fanout --port "$GATEWAY_PORT" --subscribers "$SUBSCRIBERS" --publications "$PUBLICATIONS" --transport "$target" --server-pid "$SERVER"
      } | tee "$out"
      stop_server
      ;;
    memory|redis)
      local redis=""
      [ "$target" = redis ] && redis="${REDIS/prefix=bench:/prefix=bench:cmp$$r$run:}"
      gateway_server "$redis"
      {
        load idle --port "$GATEWAY_PORT" --connections "$SUBSCRIBERS" --hold "$HOLD" --subscribe --server-pid "$SERVER"
        load fanout --port "$GATEWAY_PORT" --subscribers "$SUBSCRIBERS" --publications "$PUBLICATIONS" --server-pid "$SERVER"
        load throughput --port "$GATEWAY_PORT" --channels "$CHANNELS" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_" \
          --rate "$RATE" --in-flight 2000 --server-pid "$SERVER"
      } | tee "$out"
      stop_server
      ;;
    nchan|nchan-sse)
      local dir=$WORK/nginx-$run-$target transport=websocket
      [ "$target" = nchan-sse ] && transport=sse
      mkdir -p "$dir/tmp"
      sed "s/127.0.0.1:18710/127.0.0.1:$NCHAN_PORT/" scripts/bench/nchan/nginx.conf >"$dir/nginx.conf"
      taskset -c "$SERVER_CPU" nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/error.log" &
      SERVER=$!
      wait_http "$NCHAN_PORT"
      local worker
      worker=$(pgrep -P "$SERVER" | head -1)
      [ -n "$worker" ] || { log "no nginx worker process"; exit 1; }
      {
        load idle --target nchan --transport "$transport" --port "$NCHAN_PORT" --connections "$SUBSCRIBERS" --hold "$HOLD" --server-pid "$worker"
        load fanout --target nchan --transport "$transport" --port "$NCHAN_PORT" --subscribers "$SUBSCRIBERS" --publications "$PUBLICATIONS" --server-pid "$worker"
      } | tee "$out"
      stop_server
      ;;
    nio-floor|epoll-floor)
      taskset -c "$SERVER_CPU" "$BIN" gateway "$target" --port "$NCHAN_PORT" >/dev/null &
      SERVER=$!
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NCHAN_PORT") 2>/dev/null && break; sleep 0.1; done
      load idle --target nchan --port "$NCHAN_PORT" --connections "$SUBSCRIBERS" --hold 1 --server-pid "$SERVER" | tee "$out"
      stop_server
      taskset -c "$SERVER_CPU" "$BIN" gateway "$target" --port "$NCHAN_PORT" >/dev/null &
      SERVER=$!
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NCHAN_PORT") 2>/dev/null && break; sleep 0.1; done
      load idle --target nchan --transport sse --port "$NCHAN_PORT" --connections "$SUBSCRIBERS" --hold 1 --server-pid "$SERVER" | tee "$out-sse"
      stop_server
      if [ "$target" = epoll-floor ]; then
        # The client protocol's exchange with canned replies, driven as the gateway is.
        taskset -c "$SERVER_CPU" "$BIN" gateway epoll-floor --replies --port "$NCHAN_PORT" >/dev/null &
        SERVER=$!
        for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NCHAN_PORT") 2>/dev/null && break; sleep 0.1; done
        load idle --port "$NCHAN_PORT" --connections "$SUBSCRIBERS" --hold 1 --subscribe --server-pid "$SERVER" | tee "$out-replies"
        stop_server
      fi
      ;;
    *) log "unknown target $target"; exit 2 ;;
  esac
}

# field FILE KEY: the number in the first `KEY=<number><unit>` of FILE.
field() { { grep -o "$2=[0-9.]*" "$1" 2>/dev/null || true; } | head -1 | cut -d= -f2; }
# floor FILE KEY: from socket-floor's text ("µs per write", "p50 X ms", "p99 X ms").
floor_field() {
  case "$2" in
    cpu) sed -n 's/.*(\([0-9.]*\) µs per write).*/\1/p' "$1" 2>/dev/null | head -1 ;;
    p50|p99) sed -n "s/.*latency.* $2 \([0-9.]*\) ms.*/\1/p" "$1" 2>/dev/null | head -1 ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "?"; else printf "%.2f", a / b }'; }
# CPU per delivery in a fan-out, in µs, from the tool's server_cpu_per_publication (ms).
fanout_cpu() { awk -v ms="$(field "$1" server_cpu_per_publication)" -v n="$SUBSCRIBERS" 'BEGIN { if (ms != "") printf "%.2f", ms * 1000 / n }'; }

# against FILE CPU PEER_FILE PEER_CPU: one target's ratios to a peer's (CPU per delivery, RSS per
# idle connection, fan-out p50 and p99, CPU per new connection), |-separated.
against() {
  echo "$(ratio "$2" "$4")|$(ratio "$(field "$1" per_connection)" "$(field "$3" per_connection)")|$(ratio "$(field "$1" p50)" "$(field "$3" p50)")|$(ratio "$(field "$1" p99)" "$(field "$3" p99)")|$(ratio "$(field "$1" server_cpu_per_new_connection)" "$(field "$3" server_cpu_per_new_connection)")"
}

START_LOAD=$(loadavg)
echo "== gateway / floor / nchan, $SUBSCRIBERS subscribers, $RUNS run(s), server on CPU $SERVER_CPU, load tool on CPU $LOAD_CPU ($(nproc) cores)"
echo "load average at start: $START_LOAD"
declare -a ROWS=() UNI_ROWS=() SSE_ROWS=() NIO_ROWS=() EPOLL_ROWS=() RING_ROWS=()
for run in $(seq "$RUNS"); do
  run_load=$(loadavg | cut -d' ' -f1)
  for i in $(seq 0 $(( ${#TARGETS[@]} - 1 ))); do
    measure "$run" "${TARGETS[$(( (i + run - 1) % ${#TARGETS[@]} ))]}"
  done
  f=$WORK/$run-floor fu=$WORK/$run-floor-uring m=$WORK/$run-memory r=$WORK/$run-redis n=$WORK/$run-nchan u=$WORK/$run-uni
  s=$WORK/$run-sse ns=$WORK/$run-nchan-sse nf=$WORK/$run-nio-floor nfs=$WORK/$run-nio-floor-sse
  ef=$WORK/$run-epoll-floor efs=$WORK/$run-epoll-floor-sse efr=$WORK/$run-epoll-floor-replies
  m_cpu=$(fanout_cpu "$m") n_cpu=$(fanout_cpu "$n") u_cpu=$(fanout_cpu "$u") s_cpu=$(fanout_cpu "$s") ns_cpu=$(fanout_cpu "$ns")
  echo "run $run figures: floor cpu/delivery $(floor_field "$f" cpu) µs p50/p99 $(floor_field "$f" p50)/$(floor_field "$f" p99) ms |" \
    "floor-uring cpu/delivery $(floor_field "$fu" cpu) µs p50/p99 $(floor_field "$fu" p50)/$(floor_field "$fu" p99) ms |" \
    "memory cpu/delivery $m_cpu µs p50/p99 $(field "$m" p50)/$(field "$m" p99) ms rss/conn $(field "$m" per_connection) B cpu/new conn $(field "$m" server_cpu_per_new_connection) µs deliveries/s $(field "$m" deliveries_per_second) (p99 $(field "$m" latency_p99) ms) |" \
    "redis deliveries/s $(field "$r" deliveries_per_second) (p99 $(field "$r" latency_p99) ms) |" \
    "nchan cpu/delivery $n_cpu µs p50/p99 $(field "$n" p50)/$(field "$n" p99) ms rss/conn $(field "$n" per_connection) B cpu/new conn $(field "$n" server_cpu_per_new_connection) µs |" \
    "uni cpu/delivery $u_cpu µs p50/p99 $(field "$u" p50)/$(field "$u" p99) ms rss/conn $(field "$u" per_connection) B cpu/new conn $(field "$u" server_cpu_per_new_connection) µs |" \
    "sse cpu/delivery $s_cpu µs p50/p99 $(field "$s" p50)/$(field "$s" p99) ms rss/conn $(field "$s" per_connection) B cpu/new conn $(field "$s" server_cpu_per_new_connection) µs |" \
    "nchan-sse cpu/delivery $ns_cpu µs p50/p99 $(field "$ns" p50)/$(field "$ns" p99) ms rss/conn $(field "$ns" per_connection) B cpu/new conn $(field "$ns" server_cpu_per_new_connection) µs |" \
    "nio-floor cpu/new conn $(field "$nf" server_cpu_per_new_connection) µs (EventSource $(field "$nfs" server_cpu_per_new_connection) µs) |" \
    "epoll-floor cpu/new conn $(field "$ef" server_cpu_per_new_connection) µs (EventSource $(field "$efs" server_cpu_per_new_connection) µs, with replies $(field "$efr" server_cpu_per_new_connection) µs)"
  ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(ratio "$m_cpu" "$(floor_field "$f" cpu)")|$(ratio "$(field "$m" p99)" "$(floor_field "$f" p99)")|$(ratio "$(field "$r" deliveries_per_second)" "$(field "$m" deliveries_per_second)") ($(field "$m" latency_p99)/$(field "$r" latency_p99) ms)|$(ratio "$m_cpu" "$n_cpu")|$(ratio "$(field "$m" per_connection)" "$(field "$n" per_connection)")|$(ratio "$(field "$m" p50)" "$(field "$n" p50)")|$(ratio "$(field "$m" p99)" "$(field "$n" p99)")|$(ratio "$(field "$m" server_cpu_per_new_connection)" "$(field "$n" server_cpu_per_new_connection)")")
  UNI_ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(against "$u" "$u_cpu" "$n" "$n_cpu")")
  SSE_ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(against "$s" "$s_cpu" "$ns" "$ns_cpu")")
  new_conn() { field "$1" server_cpu_per_new_connection; }
  NIO_ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(ratio "$(new_conn "$nf")" "$(new_conn "$n")")|$(ratio "$(new_conn "$m")" "$(new_conn "$nf")")|$(ratio "$(new_conn "$nfs")" "$(new_conn "$ns")")|$(ratio "$(new_conn "$s")" "$(new_conn "$nfs")")")
  RING_ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(ratio "$(floor_field "$fu" cpu)" "$(floor_field "$f" cpu)")|$(ratio "$m_cpu" "$(floor_field "$fu" cpu)")|$(ratio "$(field "$m" p50)" "$(floor_field "$fu" p50)")|$(ratio "$(field "$m" p99)" "$(floor_field "$fu" p99)")")
  EPOLL_ROWS+=("$run|$run_load–$(loadavg | cut -d' ' -f1)|$(ratio "$(new_conn "$ef")" "$(new_conn "$n")")|$(ratio "$(new_conn "$ef")" "$(new_conn "$nf")")|$(ratio "$(new_conn "$efs")" "$(new_conn "$ns")")|$(ratio "$(new_conn "$efs")" "$(new_conn "$nfs")")|$(ratio "$(new_conn "$efr")" "$(new_conn "$n")")|$(ratio "$(new_conn "$m")" "$(new_conn "$efr")")")
done
END_LOAD=$(loadavg)

# table HEADER ROW...: the rows, then (more than one run) the median of every column after the
# second, aligned.
table() {
  {
    echo "$1"
    shift
    printf '%s\n' "$@"
    if [ "$#" -gt 1 ]; then
      printf '%s\n' "$@" | awk -F'|' '
        function median(col,   n, i, j, t, v) {
          n = 0
          for (i = 1; i <= NR; i++) { split(cell[i, col], parts, " "); if (parts[1] != "?") v[++n] = parts[1] + 0 }
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
          if (n == 0) return "?"
          return sprintf("%.2f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
        }
        { for (c = 1; c <= NF; c++) cell[NR, c] = $c; if (NF > columns) columns = NF }
        END { line = "median|"; for (c = 3; c <= columns; c++) line = line "|" median(c); print line }'
    fi
  } | column -t -s'|'
}

echo
echo "== ratios ($SUBSCRIBERS subscribers; gateway = in-memory engine unless named; below 1 is better for the gateway except Redis/memory deliveries/s)"
echo "load average at start: $START_LOAD; at end: $END_LOAD"
table "run|load|gw/floor CPU per delivery|gw/floor fan-out p99|Redis/memory deliveries/s (p99 memory/Redis)|gw/nchan CPU per delivery|gw/nchan RSS per idle conn|gw/nchan fan-out p50|gw/nchan fan-out p99|gw/nchan CPU per new conn" "${ROWS[@]}"
echo
echo "== the unidirectional endpoint (/connection/uni_websocket, in-memory engine) against nchan; below 1 is better for the gateway"
table "run|load|uni/nchan CPU per delivery|uni/nchan RSS per idle conn|uni/nchan fan-out p50|uni/nchan fan-out p99|uni/nchan CPU per new conn" "${UNI_ROWS[@]}"
echo
echo "== EventSource streams: the gateway's /connection/uni_sse against nchan's EventSource subscriber (both in memory); below 1 is better for the gateway"
table "run|load|sse/nchan-sse CPU per delivery|sse/nchan-sse RSS per idle conn|sse/nchan-sse fan-out p50|sse/nchan-sse fan-out p99|sse/nchan-sse CPU per new conn" "${SSE_ROWS[@]}"
echo
echo "== CPU per new connection against NIO's floor (a SwiftNIO server that only answers the handshake): what NIO costs against nchan, and what the gateway adds to it"
table "run|load|nio-floor/nchan WebSocket|gw/nio-floor WebSocket|nio-floor/nchan-sse EventSource|sse/nio-floor EventSource" "${NIO_ROWS[@]}"
echo
echo "== CPU per new connection of a Swift event loop of its own (edge-triggered epoll, the same canned answers): against nchan and against NIO's floor"
echo "(with replies: the same loop answering connect and subscribe with canned replies, the client protocol's exchange without its work)"
table "run|load|epoll-floor/nchan WebSocket|epoll-floor/nio-floor WebSocket|epoll-floor/nchan-sse EventSource|epoll-floor/nio-floor EventSource|with replies/nchan|gw/with replies" "${EPOLL_ROWS[@]}"
echo
echo "== the fan-out against the io_uring floor (the floor's frames through io_uring, as the gateway sends them): what io_uring saves the floor, and the gateway against it"
table "run|load|floor-uring/floor CPU per delivery|gw/floor-uring CPU per delivery|gw/floor-uring fan-out p50|gw/floor-uring fan-out p99" "${RING_ROWS[@]}"
