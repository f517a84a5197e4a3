#!/usr/bin/env bash
# Benchmark: send by business user id through the public API, release builds, the
# simulator and the load generator (examples/send_load.rs) in processes of their own.
# Usage: bench/send.sh [users] [messages] [concurrency] [rate] [rate_secs] [store] [instances]
#   store: sqlite (default) or a PostgreSQL server URL (a fresh database is made and dropped)
#   instances: how many wxlink processes share the store (the load goes round-robin)
# SIM_LATENCY_MS=100 makes the simulator answer like WeChat over the internet (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
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
rate_per_sec = 20000
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
for i in $(seq 1 "$INSTANCES"); do
  port=$((18079 + i))
  # The service runs at its default log level (info), as in production.
  WXLINK_LISTEN="127.0.0.1:$port" ./target/release/wxlink --config "$work/wxlink.toml" serve >"$work/service$i.log" 2>&1 & pids+=($!)
  bases+=("http://127.0.0.1:$port")
done
for b in "${bases[@]}" http://127.0.0.1:19090/_sim; do
  ready=
  for _ in $(seq 1 100); do
    if curl -sf "$b/livez" >/dev/null || curl -sf "$b/stats" >/dev/null; then ready=1; break; fi
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "bench: $b did not come up (ports 18080.., 19090 free?)" >&2; cat "$work"/service*.log >&2; exit 1; }
done

LATENCY="${SIM_LATENCY_MS:-0}"
if [ "$LATENCY" != 0 ]; then
  curl -sf -X POST -H 'content-type: application/json' -d "{\"latency_ms\": $LATENCY}" http://127.0.0.1:19090/_sim/faults >/dev/null
fi
echo "send benchmark: $USERS users, $(nproc) cores, store ${DB%%:*}, $INSTANCES instance(s), WeChat latency ${LATENCY} ms, $(date -u +%Y-%m-%d)"
IFS=,; list="${bases[*]}"; unset IFS
./target/release/examples/send_load "$list" http://127.0.0.1:19090 "$KEY" wxbench000000001 \
  "$USERS" "$MESSAGES" "$CONNS" "$RATE" "$SECS"
