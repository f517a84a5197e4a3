#!/usr/bin/env bash
# Benchmark: import the followers of an Official Account (user/get pages of 10,000 and
# batchget calls of 100) with `wxlink import-followers`, release build, against the
# simulator in a separate process on loopback, which holds FOLLOWERS followers (half with a
# unionid) made by its bulk control.
# Usage: bench/import-followers.sh [followers]
# With WXLINK_BENCH_POSTGRES_URL=postgres://... the store is a fresh database there instead
# of SQLite; WXLINK_BENCH_PROFILE=debug measures the debug build (for a quick look only).
set -euo pipefail
cd "$(dirname "$0")/.."
FOLLOWERS="${1:-100000}"
PROFILE="${WXLINK_BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release --quiet --bin wxlink; else cargo build --quiet --bin wxlink; fi
WXLINK="./target/$PROFILE/wxlink"

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
store="sqlite"
if [ -n "${WXLINK_BENCH_POSTGRES_URL:-}" ]; then
  pg_db="wxlink_bench_$(date +%s)"
  psql "$WXLINK_BENCH_POSTGRES_URL" -qc "CREATE DATABASE $pg_db" >/dev/null
  DB="${WXLINK_BENCH_POSTGRES_URL%/*}/$pg_db"
  store="postgres"
fi
SIM="http://127.0.0.1:19091"
APPID="wxbenchfollow001"
cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18081"
database_url = "$DB"
storage_key = "$(openssl rand -base64 32)"
[[api_keys]]
name = "bench"
key_sha256 = "$(printf 'bench' | $WXLINK hash-key)"
[[apps]]
id = "oa"
kind = "official_account"
appid = "$APPID"
secret = "bench-secret"
api_base = "$SIM"
open_base = "$SIM"
TOML

RUST_LOG=warn $WXLINK --config "$work/wxlink.toml" sim --listen 127.0.0.1:19091 >/dev/null & pids+=($!)
ready=
for _ in $(seq 1 50); do
  if curl -sf "$SIM/_sim/apps" >/dev/null; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "bench: the simulator did not come up (port 19091 free?)" >&2; exit 1; }
curl -sf -X POST "$SIM/_sim/followers/bulk" -H 'content-type: application/json' \
  -d "{\"appid\":\"$APPID\",\"count\":$FOLLOWERS,\"with_unionid_ratio\":0.5}" >/dev/null

echo "follower import benchmark: $FOLLOWERS followers, $PROFILE build, $store, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
start=$(date +%s.%N)
RUST_LOG=warn $WXLINK --config "$work/wxlink.toml" import-followers oa | tail -n 2
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
count() {
  local sql="SELECT COUNT(*), COUNT(unionid) FROM identities WHERE app = 'oa'"
  if [ "$store" = sqlite ]; then sqlite3 "$work/bench.db" "$sql" | tr '|' ' '; else psql "$DB" -Atc "$sql" | tr '|' ' '; fi
}
read -r stored with_unionid <<<"$(count)"
[ "$stored" = "$FOLLOWERS" ] || { echo "bench: $stored identities stored, $FOLLOWERS expected; the figures are void" >&2; exit 1; }
calls="$(curl -sf "$SIM/_sim/stats")"
printf '| followers | stored (with unionid) | seconds | followers/s | user/get calls | batchget calls |\n|---|---|---|---|---|---|\n'
printf '| %s | %s (%s) | %.1f | %.0f | %s | %s |\n' "$FOLLOWERS" "$stored" "$with_unionid" "$secs" "$(echo "$FOLLOWERS / $secs" | bc -l)" \
  "$(grep -o '"user_get_calls":[0-9]*' <<<"$calls" | cut -d: -f2)" "$(grep -o '"user_batchget_calls":[0-9]*' <<<"$calls" | cut -d: -f2)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
