#!/usr/bin/env bash
# Benchmark: the push benchmark (bench/push.sh's load: safe-mode delivery reports from
# examples/push_load.rs) three times in one run, on a fresh SQLite database each time:
# forwarding off; forwarding on to a downstream answering at once; and to one answering in
# 50 ms (examples/forward_sink.rs, its own process). Reports pushes/s and p50/p99 answer
# time of each, and how many pushes the downstream got.
# Usage: bench/push-forward.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
CONNS="${2:-64}"
cargo build --release --quiet --bin wxlink --example push_load --example forward_sink

work="$(mktemp -d)"
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
KEY="bench-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
TOKEN="benchPushToken"
AES="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID="wxbench000000001"
STORAGE_KEY="$(openssl rand -base64 32)"

up() {
  local url="$1"
  for _ in $(seq 1 50); do
    if curl -sf "$url" >/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "bench: $url did not come up (ports 18080, 19090, 19292 free?)" >&2
  exit 1
}

# run LABEL [DELAY_MS]: no delay given means forwarding off.
run() {
  local label="$1" delay="${2:-}"
  rm -f "$work"/bench.db*
  local forward=""
  if [ -n "$delay" ]; then forward="forward_url = \"http://127.0.0.1:19292/wechat\""; fi
  cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18080"
public_url = "http://127.0.0.1:18080"
database_url = "sqlite://$work/bench.db"
storage_key = "$STORAGE_KEY"
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
$forward
TOML
  RUST_LOG=warn ./target/release/wxlink --config "$work/wxlink.toml" sim --listen 127.0.0.1:19090 >/dev/null & pids+=($!)
  ./target/release/wxlink --config "$work/wxlink.toml" serve >/dev/null & pids+=($!)
  if [ -n "$delay" ]; then
    ./target/release/examples/forward_sink 127.0.0.1:19292 "$delay" & pids+=($!)
    up http://127.0.0.1:19292/stats
  fi
  up http://127.0.0.1:18080/livez
  ./target/release/examples/push_load http://127.0.0.1:18080/wechat/oa/push "$TOKEN" "$AES" "$APPID" 2 "$CONNS" >/dev/null
  local out
  out="$(./target/release/examples/push_load http://127.0.0.1:18080/wechat/oa/push "$TOKEN" "$AES" "$APPID" "$SECS" "$CONNS")"
  local got=""
  if [ -n "$delay" ]; then got=" downstream_$(curl -s http://127.0.0.1:19292/stats) (warm-up included)"; fi
  printf '%-28s %s%s\n' "$label" "$out" "$got"
  grep -q "failures=0" <<<"$out" || { echo "bench: some pushes were not answered success; the figures are void" >&2; exit 1; }
  stop_all
  sleep 0.5
}

echo "push forwarding benchmark: safe mode, sqlite, $CONNS connections, ${SECS}s each, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
run "forwarding off"
run "forwarding on, 0 ms" 0
run "forwarding on, 50 ms" 50
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
