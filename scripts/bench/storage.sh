#!/usr/bin/env bash
# Single-row autocommit INSERT throughput: the Storage module (switchboard-bench storage, prepared
# statements through MessageStore.insertMessage) against the `mariadb` command-line client sending
# the same INSERTs, one statement per round trip, with the same number of connections.
#
# Usage: scripts/bench/storage.sh [ROWS] [CONNECTIONS...]     (defaults: 10000, "1 16")
# Env:   SB_BENCH_DATABASE_URL  server to use (default mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard);
#                               the script creates and drops its own switchboard_test_bench_* database there.
#        BENCH_BIN              an already built switchboard-bench (skips the release build).
#        VECTOR_CHUNKS          chunks for the vector search measurement at the end (default 10000, 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/../.."

rows=${1:-10000}
shift || true
connections=("${@:-1}")
[ $# -eq 0 ] && connections=(1 16)
url=${SB_BENCH_DATABASE_URL:-mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard}

if [[ ! $url =~ ^(mariadb|mysql)://([^:@/]+)(:([^@/]*))?@([^:/]+)(:([0-9]+))?/([^?]+) ]]; then
  echo "cannot parse $url" >&2; exit 2
fi
user=${BASH_REMATCH[2]} password=${BASH_REMATCH[4]} host=${BASH_REMATCH[5]} port=${BASH_REMATCH[7]:-3306}
db="switchboard_test_bench_$$"
base=${url%%\?*}
bench_url="${base%/*}/$db"
client() { MYSQL_PWD="$password" mariadb --protocol=TCP -h"$host" -P"$port" -u"$user" "$@"; }

if [ -z "${BENCH_BIN:-}" ]; then
  swift build -c release --product switchboard-bench >&2
  BENCH_BIN=.build/release/switchboard-bench
fi

client -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
work=$(mktemp -d)
trap 'client -e "DROP DATABASE IF EXISTS \`$db\`" || true; rm -rf "$work"' EXIT

echo "rows=$rows server=$host:$port $(client -N -e 'SELECT VERSION()')"
printf '%-12s %14s %14s %8s\n' connections "store rows/s" "client rows/s" ratio
for c in "${connections[@]}"; do
  # The store (also applies the migrations on the first run).
  store=$("$BENCH_BIN" storage --url "$bench_url" --rows "$rows" --connections "$c" | sed -n 's/.*rows_per_sec=\([0-9.]*\).*/\1/p')

  # The command-line client: the same single-row INSERTs into the same table, split over $c processes.
  ids=$(client -N "$db" -e "
    INSERT INTO users (email, name, role, created_at, updated_at) VALUES (CONCAT('cli-', UUID(), '@example.com'), 'cli', 'user', NOW(6), NOW(6));
    SET @u = LAST_INSERT_ID();
    INSERT INTO chats (user_id, title, channel, created_at, updated_at) VALUES (@u, 'cli', 'api', NOW(6), NOW(6));
    SELECT @u, LAST_INSERT_ID();")
  read -r uid cid <<<"$ids"
  for ((w = 0; w < c; w++)); do
    share=$((rows / c + (w < rows % c ? 1 : 0)))
    awk -v n="$share" -v w="$w" -v u="$uid" -v ch="$cid" 'BEGIN {
      for (i = 0; i < n; i++)
        printf "INSERT INTO messages (chat_id, user_id, role, content, status, channel, created_at, updated_at) VALUES (%d, %d, '\''user'\'', '\''bench message %d-%d'\'', '\''queued'\'', '\''api'\'', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));\n", ch, u, w, i
    }' >"$work/w$w.sql"
  done
  start=$(date +%s.%N)
  for ((w = 0; w < c; w++)); do client "$db" <"$work/w$w.sql" & done
  wait
  end=$(date +%s.%N)
  stored=$(client -N "$db" -e "SELECT COUNT(*) FROM messages WHERE chat_id = $cid")
  [ "$stored" -eq "$rows" ] || { echo "client stored $stored of $rows rows" >&2; exit 1; }
  cli=$(awk -v r="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", r / (e - s) }')
  ratio=$(awk -v a="$store" -v b="$cli" 'BEGIN { printf "%.2f", a / b }')
  printf '%-12s %14s %14s %8s\n' "$c" "$store" "$cli" "$ratio"
done

# Vector search: nearestChunks over one owner's chunks (384 dimensions, like all-MiniLM-L6-v2).
if [ "${VECTOR_CHUNKS:-10000}" -gt 0 ]; then
  "$BENCH_BIN" storage --mode vectors --url "$bench_url" --rows "${VECTOR_CHUNKS:-10000}" --dim 384
fi
