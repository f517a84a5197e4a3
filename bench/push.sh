#!/usr/bin/env bash
# Benchmark: POST /wechat/{app}/push in safe mode (signature, msg_signature, AES-256-CBC,
# XML, replay guard and event stored before `success`, delivery report handled after),
# release builds, load from examples/push_load.rs in a separate process on loopback.
# Usage: bench/push.sh [seconds] [connections]
# With WXLINK_BENCH_POSTGRES_URL=postgres://... the store is a fresh database there instead
# of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-64}"
cargo build --release --quiet --bin wxlink --example push_load

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

DB="sqlite://$work/bench.db"
if [ -n "${WXLINK_BENCH_POSTGRES_URL:-}" ]; then
  name="wxlink_bench_$(date +%s)"
  psql "$WXLINK_BENCH_POSTGRES_URL" -qc "CREATE DATABASE $name" >/dev/null
  DB="${WXLINK_BENCH_POSTGRES_URL%/*}/$name"
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
out="$(./target/release/examples/push_load http://127.0.0.1:18080/wechat/oa/push "$TOKEN" "$AES" "$APPID" "$SECS" "$CONNS")"
echo "$out"
sleep 2
curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/api/v1/apps/oa/events?type=TEMPLATESENDJOBFINISH&limit=1" >/dev/null \
  || { echo "bench: the events API did not answer" >&2; exit 1; }
if grep -q "failures=0" <<<"$out"; then :; else echo "bench: some pushes were not answered success; the figures are void" >&2; exit 1; fi
