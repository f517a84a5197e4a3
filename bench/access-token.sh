#!/usr/bin/env bash
# Benchmark: GET /api/v1/apps/{app}/access-token served from memory, next to a trivial axum
# route, both release builds, load from wrk (a separate process) on loopback.
# Usage: bench/access-token.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/perf.sh
SECS="${1:-10}"
CONNS="${2:-64}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin wxlink --example trivial_server

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

KEY="bench-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18080"
database_url = "sqlite://$work/bench.db"
storage_key = "$(openssl rand -base64 32)"
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
./target/release/wxlink --config "$work/wxlink.toml" serve >/dev/null & pids+=($!)
service_pid=$!
./target/release/examples/trivial_server 127.0.0.1:18081 >/dev/null & pids+=($!)
ready=
for _ in $(seq 1 50); do
  if curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:18080/api/v1/apps/oa/access-token >/dev/null \
    && curl -sf http://127.0.0.1:18081/ >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "bench: the servers did not come up (ports 18080, 18081, 19090 free?)" >&2; exit 1; }

run() { # name url [header]
  local out
  if [ -n "${3:-}" ]; then
    out="$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "$3" "$2")"
  else
    out="$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$2")"
  fi
  local rps p50 p99 errs
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "${errs:-0}"
  if [ -n "$errs" ]; then echo "bench: $1 answered $errs non-2xx responses; the figures are void" >&2; exit 1; fi
  echo "$rps" > "$work/$1.rps"
}

echo "access-token benchmark: wrk -t2 -c$CONNS -d${SECS}s, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| route | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
run trivial http://127.0.0.1:18081/
run livez http://127.0.0.1:18080/livez
perf_start access-token "$service_pid"
run access-token http://127.0.0.1:18080/api/v1/apps/oa/access-token "Authorization: Bearer $KEY"
perf_stop
echo
awk -v a="$(cat "$work/access-token.rps")" -v t="$(cat "$work/trivial.rps")" -v l="$(cat "$work/livez.rps")" \
  'BEGIN { printf "access-token = %.0f%% of the bare trivial axum route, %.0f%% of the trivial route on wxlink'"'"'s own stack (/livez)\n", 100*a/t, 100*a/l }'
