#!/usr/bin/env bash
# Benchmark: the send benchmark with and without one webhook endpoint taking message.sent
# and message.delivered for every message, in one run. Release builds; the simulator
# (pushing its delivery reports to the service), the service, the load generator
# (examples/send_load.rs) and the receiver (examples/webhook_sink.rs) each in its own
# process; SQLite. Reports messages/s end to end (send_load) and, with webhooks, how many
# events arrived and their lag (event time to arrival) p50/p99.
# Usage: bench/webhooks.sh [users] [messages] [concurrency] [rate] [rate_secs]
#   messages go as fast as they are accepted (a burst: the lag then is mostly queueing);
#   rate > 0 adds send_load's open-loop phase at that many requests/s for rate_secs.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-2000}"
MESSAGES="${2:-20000}"
CONNS="${3:-64}"
RATE="${4:-0}"
SECS="${5:-0}"
cargo build --release --quiet --bin wxlink --example send_load --example webhook_sink

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
SECRET="whsec_$(head -c 32 /dev/urandom | base64)"

run() {
  local mode="$1"
  rm -f "$work"/bench.db*
  cat > "$work/wxlink.toml" <<TOML
database_url = "sqlite://$work/bench.db"
storage_key = "$(openssl rand -base64 32)"
public_url = "http://127.0.0.1:18080"
[outbox]
rate_per_sec = 20000
[rate_limits]
push = { per_second = 0, burst = 0 }
[[api_keys]]
name = "bench"
key_sha256 = "$SHA"
[[apps]]
id = "oa"
kind = "official_account"
appid = "wxbench000000001"
secret = "bench-secret"
push_token = "benchPushToken1"
push_mode = "plain"
api_base = "http://127.0.0.1:19090"
open_base = "http://127.0.0.1:19090"
TOML
  if [ "$mode" = with ]; then
    cat >> "$work/wxlink.toml" <<TOML
[[webhooks]]
name = "bench"
url = "http://127.0.0.1:19191/hook"
events = ["message.sent", "message.delivered"]
secret = "$SECRET"
TOML
    ./target/release/examples/webhook_sink 127.0.0.1:19191 & pids+=($!)
  fi
  RUST_LOG=warn ./target/release/wxlink --config "$work/wxlink.toml" sim --listen 127.0.0.1:19090 >/dev/null & pids+=($!)
  WXLINK_LISTEN=127.0.0.1:18080 ./target/release/wxlink --config "$work/wxlink.toml" serve >"$work/service.log" 2>&1 & pids+=($!)
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/livez >/dev/null && break; sleep 0.2; done
  echo "-- $mode webhooks"
  ./target/release/examples/send_load http://127.0.0.1:18080 http://127.0.0.1:19090 "$KEY" wxbench000000001 \
    "$USERS" "$MESSAGES" "$CONNS" "$RATE" "$SECS"
  if [ "$mode" = with ]; then
    # Every accepted message (and the 200 warm-up ones) gives a message.sent and a message.delivered.
    want=$(( 2 * (MESSAGES + 200 + RATE * SECS) ))
    for _ in $(seq 1 600); do
      got=$(curl -sf http://127.0.0.1:19191/stats | python3 -c 'import json,sys; c=json.load(sys.stdin)["counts"]; print(c.get("message.sent",0)+c.get("message.delivered",0))')
      [ "$got" -ge "$want" ] && break
      sleep 0.5
    done
    echo "webhook receiver: $(curl -sf http://127.0.0.1:19191/stats)"
  fi
  stop_all
}
echo "webhook benchmark: $USERS users, $MESSAGES messages, $CONNS clients, then $RATE/s for $SECS s, $(nproc) cores, SQLite, $(date -u +%Y-%m-%d)"
run without
run with
