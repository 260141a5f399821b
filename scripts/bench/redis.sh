#!/usr/bin/env bash
# Pipelined SET and XADD throughput of Switchboard's RedisClient next to redis-benchmark -P 16
# against the same Redis on the same machine, with the ratios.
#
#   scripts/bench/redis.sh [redis://host:port/db] [ops]
#   (defaults: $SB_BENCH_REDIS_URL or redis://127.0.0.1:6380/0, 200000 ops; SB_BENCH_BIN=path
#   skips the build and uses that switchboard-bench binary; SB_BENCH_BLOCKING=1 also measures
#   the blocking-hiredis-on-a-thread-pool design the client did not take)
set -euo pipefail
cd "$(dirname "$0")/../.."

url=${1:-${SB_BENCH_REDIS_URL:-redis://127.0.0.1:6380/0}}
ops=${2:-200000}
clients=50
depth=16

# host, port, password and db from the URL (redis://[user[:password]@]host[:port][/db])
rest=${url#redis://}
rest=${rest%%\?*}
auth=()
if [[ $rest == *@* ]]; then
  userinfo=${rest%@*}
  rest=${rest##*@}
  password=${userinfo#*:}
  user=${userinfo%%:*}
  [[ $userinfo == *:* ]] || { password=$userinfo; user=; }
  [[ -n $user ]] && auth+=(--user "$user")
  [[ -n $password ]] && auth+=(-a "$password" --no-auth-warning)
fi
db=0
[[ $rest == */* ]] && { db=${rest#*/}; db=${db:-0}; rest=${rest%%/*}; }
host=${rest%%:*}
port=6379
[[ $rest == *:* ]] && port=${rest##*:}

command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found (apt-get install redis-tools)" >&2; exit 1; }
redis-cli -h "$host" -p "$port" "${auth[@]}" -n "$db" PING >/dev/null || { echo "no Redis at $url" >&2; exit 1; }

if [[ -n ${SB_BENCH_BIN:-} ]]; then
  bin=$SB_BENCH_BIN  # an already built release binary
else
  echo "== building switchboard-bench (release)"
  swift build -c release --product switchboard-bench >/dev/null
  bin="$(swift build -c release --show-bin-path)/switchboard-bench"
fi

echo "== RedisClient: $bin redis --url $url --ops $ops --depth $depth --clients $clients"
ours=$("$bin" redis --url "$url" --ops "$ops" --depth "$depth" --clients "$clients")
echo "$ours" | grep -v '^RESULT'
result() { echo "$ours" | awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }'; }

if [[ ${SB_BENCH_BLOCKING:-0} == 1 ]]; then
  echo "== blocking hiredis baseline: $bin redis --mode blocking --url $url --ops $ops --depth $depth --clients $clients"
  blocking=$("$bin" redis --mode blocking --url "$url" --ops "$ops" --depth "$depth" --clients "$clients")
  echo "$blocking" | grep -v '^RESULT'
fi

rb() {  # redis-benchmark requests/s of one run
  redis-benchmark -h "$host" -p "$port" "${auth[@]}" --dbnum "$db" -c "$clients" -P "$depth" -n "$ops" -q "$@" \
    | tr '\r' '\n' | awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($i == "requests") v = $(i - 1) } END { print int(v) }'
}
stream="sbbench:redis-benchmark:stream"
echo "== redis-benchmark -c $clients -P $depth -n $ops -t set"
rb_set=$(rb -t set)
echo "SET   $rb_set ops/s"
echo "== redis-benchmark -c $clients -P $depth -n $ops XADD $stream MAXLEN ~ 100000 * field xxx"
rb_xadd=$(rb XADD "$stream" MAXLEN '~' 100000 '*' field xxx)
echo "XADD  $rb_xadd ops/s"
redis-cli -h "$host" -p "$port" "${auth[@]}" -n "$db" DEL "$stream" "key:__rand_int__" >/dev/null

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "== ratios (RedisClient / redis-benchmark, same shape: $clients clients x depth $depth)"
printf '%-6s %12s %12s %8s   %s\n' cmd RedisClient redis-bench ratio "(1 caller depth $depth | 1 caller big batch)"
for cmd in set xadd; do
  if [[ $cmd == set ]]; then theirs=$rb_set; else theirs=$rb_xadd; fi
  ours_p=$(result "${cmd}_p$depth")
  printf '%-6s %12s %12s %8s   (%s | %s)\n' "${cmd^^}" "$ours_p" "$theirs" "$(ratio "$ours_p" "$theirs")" \
    "$(result "${cmd}_p${depth}_single")" "$(result "${cmd}_batch")"
done
