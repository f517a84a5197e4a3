#!/usr/bin/env bash
# Benchmark: send by business user id through the public API, release builds, the
# simulator and the load generator (examples/send_load.rs) in processes of their own.
# Usage: bench/send.sh [users] [messages] [concurrency] [rate] [rate_secs] [store] [instances]
#   store: sqlite (default) or a PostgreSQL server URL (a fresh database is made and dropped)
#   instances: how many wxlink processes share the store (the load goes round-robin)
# SIM_LATENCY_MS=100 makes the simulator answer like WeChat over the internet (default 0).
# SEND_TARGET=baseline drives bench/baseline/ (Flask + wechatpy + SQLite under gunicorn,
# sending synchronously) with the same load instead of wxlink (one instance, its own SQLite).
# SEED_MESSAGES=N stores N finished messages (delivered, with payload, msgid and history)
# before the load, as a big account's database holds them (bench/growth.sh).
# Prints a `| memory |` line: the first instance's resident memory idle and after the load.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/perf.sh
USERS="${1:-2000}"
MESSAGES="${2:-30000}"
CONNS="${3:-64}"
RATE="${4:-1000}"
SECS="${5:-10}"
STORE="${6:-sqlite}"
INSTANCES="${7:-1}"
cargo build --release --quiet --bin wxlink --example send_load

work="$(mktemp -d)"
pids=()
pgdb=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$pgdb" ] && psql "$STORE" -qc "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$STORE" = sqlite ]; then
  DB="sqlite://$work/bench.db"
else
  pgdb="wxlink_bench_$(date +%s)_$$"
  psql "$STORE" -qc "CREATE DATABASE $pgdb" >/dev/null
  DB="${STORE%/*}/$pgdb"
fi

KEY="bench-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
cat > "$work/wxlink.toml" <<TOML
database_url = "$DB"
storage_key = "$(openssl rand -base64 32)"
[outbox]
rate_per_sec = ${OUTBOX_RATE:-20000}
[[api_keys]]
name = "bench"
key_sha256 = "$SHA"
[[apps]]
id = "oa"
kind = "official_account"
appid = "wxbench000000001"
secret = "bench-secret"
api_base = "http://127.0.0.1:19090"
open_base = "http://127.0.0.1:19090"
TOML

RUST_LOG=warn ./target/release/wxlink --config "$work/wxlink.toml" sim --listen 127.0.0.1:19090 >/dev/null & pids+=($!)
bases=()
TARGET="${SEND_TARGET:-wxlink}"
if [ "$TARGET" = baseline ]; then
  bench/baseline/run.sh 127.0.0.1:18080 http://127.0.0.1:19090 "$work/baseline.db" >"$work/service1.log" 2>&1 & pids+=($!)
  bases+=("http://127.0.0.1:18080")
else
  for i in $(seq 1 "$INSTANCES"); do
    port=$((18079 + i))
    # The service runs at its default log level (info), as in production.
    WXLINK_LISTEN="127.0.0.1:$port" ./target/release/wxlink --config "$work/wxlink.toml" serve >"$work/service$i.log" 2>&1 & pids+=($!)
    bases+=("http://127.0.0.1:$port")
  done
fi
first_pid="${pids[1]}"
# Resident memory of the first instance (for the baseline: every gunicorn process), in MB.
rss_mb() {
  if [ "$TARGET" = baseline ]; then
    ps -o rss= --ppid "$first_pid" -p "$first_pid" 2>/dev/null | awk '{s+=$1} END {printf "%.1f", s/1024}'
  else
    awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$first_pid/status"
  fi
}
for b in "${bases[@]}" http://127.0.0.1:19090/_sim; do
  ready=
  for _ in $(seq 1 100); do
    if curl -sf "$b/livez" >/dev/null || curl -sf "$b/stats" >/dev/null; then ready=1; break; fi
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "bench: $b did not come up (ports 18080.., 19090 free?)" >&2; cat "$work"/service*.log >&2; exit 1; }
done

SEED="${SEED_MESSAGES:-0}"
if [ "$SEED" != 0 ] && [ "$TARGET" = wxlink ]; then
  # Ids as the service makes them ("m" + 12 hex digits of milliseconds + suffix), spread
  # over the last day; msgids negative so that no delivery report of the run matches one.
  now_ms="$(date +%s%3N)"
  payload='{"data":{"first":{"value":"您的订单已发货"},"keyword1":{"value":"SEED-ORDER-0000001"},"remark":{"value":"感谢惠顾"}},"url":"https://shop.example.com/orders/1"}'
  line='{"status":"queued","at_ms":0}\n{"status":"sending","at_ms":0,"attempt":1}\n{"status":"sent","at_ms":0}\n{"status":"delivered","at_ms":0}\n'
  if [ "$STORE" = sqlite ]; then
    sqlite3 "$work/bench.db" "PRAGMA busy_timeout = 30000;
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $SEED)
      INSERT INTO messages (id, caller, request_hash, user_id, app, channel, openid, template_id,
          payload, status, msgid, attempts, next_attempt_ms, history, created_ms, updated_ms)
      SELECT printf('m%012xseed%07d', $now_ms - 86400000 + i * 86400000 / $SEED, i), 'bench', '',
          'seed-' || (i % 50000), 'oa', 'template', 'oSeed' || (i % 50000), 'seedtemplate', '$payload',
          'delivered', -i, 1, 0, replace('$line', '\n', char(10)), $now_ms - 86400000 + i * 86400000 / $SEED,
          $now_ms - 86400000 + i * 86400000 / $SEED
      FROM n;"
  else
    psql "$DB" -qc "INSERT INTO messages (id, caller, request_hash, user_id, app, channel, openid, template_id,
          payload, status, msgid, attempts, next_attempt_ms, history, created_ms, updated_ms)
      SELECT 'm' || lpad(to_hex($now_ms - 86400000 + i * 86400000 / $SEED), 12, '0') || 'seed' || lpad(i::text, 7, '0'),
          'bench', '', 'seed-' || (i % 50000), 'oa', 'template', 'oSeed' || (i % 50000), 'seedtemplate', '$payload',
          'delivered', -i, 1, 0, replace('$line', '\n', chr(10)), $now_ms - 86400000 + i * 86400000 / $SEED,
          $now_ms - 86400000 + i * 86400000 / $SEED
      FROM generate_series(1::bigint, $SEED) AS i; ANALYZE messages;"
  fi
  echo "seeded $SEED finished messages" >&2
fi

LATENCY="${SIM_LATENCY_MS:-0}"
if [ "$LATENCY" != 0 ]; then
  curl -sf -X POST -H 'content-type: application/json' -d "{\"latency_ms\": $LATENCY}" http://127.0.0.1:19090/_sim/faults >/dev/null
fi
sleep 1
idle_rss="$(rss_mb)"
echo "send benchmark: $TARGET, $USERS users, $(nproc) cores, store ${DB%%:*}, $INSTANCES instance(s), WeChat latency ${LATENCY} ms, ${SEED} messages stored before, $(date -u +%Y-%m-%d)"
IFS=,; list="${bases[*]}"; unset IFS
perf_start send "$first_pid"
./target/release/examples/send_load "$list" http://127.0.0.1:19090 "$KEY" wxbench000000001 \
  "$USERS" "$MESSAGES" "$CONNS" "$RATE" "$SECS"
perf_stop
echo "| memory | idle ${idle_rss} MB | after the load $(rss_mb) MB |"
