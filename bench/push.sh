#!/usr/bin/env bash
# Benchmark: POST /wechat/{app}/push in safe mode (signature, msg_signature, AES-256-CBC,
# XML, replay guard and event stored before `success`, delivery report handled after),
# release builds, load from examples/push_load.rs in a separate process on loopback.
# Usage: bench/push.sh [seconds] [connections]
# With WXLINK_BENCH_POSTGRES_URL=postgres://... the store is a fresh database there instead
# of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/perf.sh
SECS="${1:-10}"
CONNS="${2:-64}"
cargo build --release --quiet --bin wxlink --example push_load

work="$(mktemp -d)"
pids=()
pg_db=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$pg_db" ]; then sleep 0.5; psql "$WXLINK_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

DB="sqlite://$work/bench.db"
if [ -n "${WXLINK_BENCH_POSTGRES_URL:-}" ]; then
  pg_db="wxlink_bench_$(date +%s)"
  psql "$WXLINK_BENCH_POSTGRES_URL" -qc "CREATE DATABASE $pg_db" >/dev/null
  DB="${WXLINK_BENCH_POSTGRES_URL%/*}/$pg_db"
fi
KEY="bench-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
TOKEN="benchPushToken"
AES="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID="wxbench000000001"
cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18080"
public_url = "http://127.0.0.1:18080"
database_url = "$DB"
storage_key = "$(openssl rand -base64 32)"
# The load generator is one address and WeChat's pushes come from a few: the per-address
# push limit would measure itself, not the endpoint.
[rate_limits]
push = { per_second = 0, burst = 0 }
[[api_keys]]
name = "bench"
key_sha256 = "$SHA"
[[apps]]
id = "oa"
kind = "official_account"
appid = "$APPID"
secret = "bench-secret"
push_token = "$TOKEN"
encoding_aes_key = "$AES"
push_mode = "safe"
api_base = "http://127.0.0.1:19090"
open_base = "http://127.0.0.1:19090"
TOML

RUST_LOG=warn ./target/release/wxlink --config "$work/wxlink.toml" sim --listen 127.0.0.1:19090 >/dev/null & pids+=($!)
# The service runs at its default log level (info), as in production.
./target/release/wxlink --config "$work/wxlink.toml" serve >/dev/null & pids+=($!)
service_pid=$!
ready=
for _ in $(seq 1 50); do
  if curl -sf http://127.0.0.1:18080/livez >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "bench: the service did not come up (ports 18080, 19090 free?)" >&2; exit 1; }

store="sqlite"; [ -n "${WXLINK_BENCH_POSTGRES_URL:-}" ] && store="postgres"
echo "push benchmark: safe mode, $store, $CONNS connections, ${SECS}s, $(nproc) cores, $(date -u +%Y-%m-%d)"
# A short warm-up, then the measured run.
./target/release/examples/push_load http://127.0.0.1:18080/wechat/oa/push "$TOKEN" "$AES" "$APPID" 2 "$CONNS" >/dev/null
perf_start push "$service_pid"
out="$(./target/release/examples/push_load http://127.0.0.1:18080/wechat/oa/push "$TOKEN" "$AES" "$APPID" "$SECS" "$CONNS")"
perf_stop
echo "$out"
if grep -q "failures=0" <<<"$out"; then :; else echo "bench: some pushes were not answered success; the figures are void" >&2; exit 1; fi
# Every acknowledged push is stored, and handled shortly after.
count() {
  local sql="SELECT COUNT(*), COUNT(handled_at), COUNT(*) FILTER (WHERE outcome = 'waiting_for_send') FROM push_events"
  if [ "$store" = sqlite ]; then sqlite3 "$work/bench.db" "$sql" | tr '|' ' '; else psql "$DB" -Atc "$sql" | tr '|' ' '; fi
}
sleep 1
read -r stored handled reported < <(count)
echo "stored=$stored handled=$handled delivery_reports_handled=$reported (warm-up included)"
[ "$stored" = "$handled" ] || { echo "bench: some stored pushes were not handled within 1 s" >&2; exit 1; }
