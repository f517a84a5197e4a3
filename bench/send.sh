#!/usr/bin/env bash
# Benchmark: send by business user id through the public API, release builds, the
# simulator and the load generator (examples/send_load.rs) in processes of their own.
# Usage: bench/send.sh [users] [messages] [concurrency] [rate] [rate_secs] [database_url]
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-2000}"
MESSAGES="${2:-30000}"
CONNS="${3:-64}"
RATE="${4:-1000}"
SECS="${5:-10}"
cargo build --release --quiet --bin wxlink --example send_load

work="$(mktemp -d)"
DB="${6:-sqlite://$work/bench.db}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

KEY="bench-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18080"
database_url = "$DB"
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
# The service runs at its default log level (info), as in production.
./target/release/wxlink --config "$work/wxlink.toml" serve >"$work/service.log" 2>&1 & pids+=($!)
ready=
for _ in $(seq 1 50); do
  if curl -sf http://127.0.0.1:18080/livez >/dev/null && curl -sf http://127.0.0.1:19090/_sim/stats >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "bench: the servers did not come up (ports 18080, 19090 free?)" >&2; cat "$work/service.log" >&2; exit 1; }

echo "send benchmark: $USERS users, $(nproc) cores, store ${DB%%:*}, $(date -u +%Y-%m-%d)"
./target/release/examples/send_load http://127.0.0.1:18080 http://127.0.0.1:19090 "$KEY" wxbench000000001 \
  "$USERS" "$MESSAGES" "$CONNS" "$RATE" "$SECS"
