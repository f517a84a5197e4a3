#!/usr/bin/env bash
# What one message costs the database from accept to delivered, counted on PostgreSQL:
# committed transactions and rows written (pg_stat_database) and statements sent (sqlx's
# statement log), for N messages sent one at a time and then N sent by 64 clients at once,
# each minus an idle window of the same length (heartbeats, sweeps).
# Usage: bench/writes.sh [messages] [postgres_server_url]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
PG="${2:-postgres://postgres@127.0.0.1:5432/test}"
cargo build --release --quiet --locked --bin wxlink

work="$(mktemp -d)"
pids=()
db="wxlink_writes_$(date +%s)_$$"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
DB="${PG%/*}/$db"
KEY="writes-key-$(date +%s)"
SHA="$(printf '%s' "$KEY" | ./target/release/wxlink hash-key)"
APPID="wxwrites00000001"
cat > "$work/wxlink.toml" <<TOML
listen = "127.0.0.1:18080"
public_url = "http://127.0.0.1:18080"
database_url = "$DB"
storage_key = "$(openssl rand -base64 32)"
[outbox]
rate_per_sec = 20000
[rate_limits]
push = { per_second = 0, burst = 0 }
[[api_keys]]
name = "writes"
key_sha256 = "$SHA"
[[apps]]
id = "oa"
kind = "official_account"
appid = "$APPID"
secret = "writes-secret"
push_token = "writesPushToken"
api_base = "http://127.0.0.1:19090"
open_base = "http://127.0.0.1:19090"
TOML
RUST_LOG=warn ./target/release/wxlink --config "$work/wxlink.toml" sim --listen 127.0.0.1:19090 >"$work/sim.log" 2>&1 & pids+=($!)
# Every statement sqlx runs is logged at debug under `sqlx::query`.
RUST_LOG="warn,sqlx::query=debug" ./target/release/wxlink --config "$work/wxlink.toml" serve >"$work/service.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/livez >/dev/null && curl -sf http://127.0.0.1:19090/_sim/stats >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:18080/livez >/dev/null || { echo "writes: the service did not come up" >&2; cat "$work/service.log" >&2; exit 1; }

TPL="writestemplate00000000000000000000000000001"
curl -sf -H 'content-type: application/json' -d "{\"appid\":\"$APPID\",\"kind\":\"template\",\"template_id\":\"$TPL\",\"title\":\"t\",\"content\":\"{{keyword1.DATA}}\"}" \
  http://127.0.0.1:19090/_sim/templates >/dev/null
openid="$(curl -sf -H 'content-type: application/json' -d '{}' http://127.0.0.1:19090/_sim/people | python3 -c "import json,sys; print(json.load(sys.stdin)['openids']['$APPID'])")"
curl -sf -X PUT -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/api/v1/users/u1/identities/oa/$openid" >/dev/null

send() { # i
  curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"channel\":\"template\",\"app\":\"oa\",\"template_id\":\"$TPL\",\"data\":{\"keyword1\":\"m$1\"}}" \
    http://127.0.0.1:18080/api/v1/users/u1/messages
}
# Each poll is a transaction of its own in the measured database: counted, and subtracted.
delivered() { echo >> "$work/polls"; psql "$DB" -Atc "SELECT COUNT(*) FROM messages WHERE status = 'delivered'"; }
wait_delivered() { # count
  for _ in $(seq 1 600); do [ "$(delivered)" -ge "$1" ] && return; sleep 0.1; done
  echo "writes: only $(delivered) of $1 messages reached delivered" >&2; exit 1
}
# PostgreSQL publishes a backend's counters at most once a second and when it goes idle;
# 11 s of quiet lets every pooled connection's counters arrive.
stats() { sleep 11; psql "$DB" -Atc "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()"; }
statements() { grep -c 'sqlx::query' "$work/service.log" || true; }
# (Colour codes stripped, should a terminal-style log ever reach the file.)
selects() { grep 'sqlx::query' "$work/service.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -ciE 'summary="(select|with)' || true; }

send 0; wait_delivered 1
measure() { # label mode
  local c0 w0 q0 r0 t0 c1 w1 q1 r1 secs i
  read -r c0 w0 < <(stats | tr '|' ' '); q0="$(statements)"; r0="$(selects)"; t0="$(date +%s.%N)"
  : > "$work/polls"
  case "$2" in
    idle) sleep "$IDLE_SECS" ;;
    one) for i in $(seq 1 "$N"); do send "$i"; done ;;
    many) export -f send; export KEY TPL; seq 1 "$N" | xargs -P 64 -I{} bash -c 'send {}' ;;
  esac
  [ "$2" = idle ] || wait_delivered "$TARGET"
  secs="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b-a}')"
  q1="$(statements)"; r1="$(selects)"
  local polls; polls="$(wc -l < "$work/polls")"
  read -r c1 w1 < <(stats | tr '|' ' ')
  echo "$1 $((c1 - c0 - 1 - polls)) $((w1 - w0)) $((q1 - q0)) $((r1 - r0)) $secs"
}
TARGET=$((1 + N)); one="$(measure one one)"
IDLE_SECS="$(awk '{printf "%d", $6 + 0.5}' <<<"$one")"; idle1="$(measure idle idle)"
TARGET=$((1 + 2 * N)); many="$(measure many many)"
IDLE_SECS="$(awk '{printf "%d", $6 + 0.5}' <<<"$many")"; idle2="$(measure idle idle)"

echo "writes per message, PostgreSQL, $N messages each way, accept to delivered (report pushed back by the simulator), $(date -u +%Y-%m-%d)"
echo
echo "| sent | commits/message | rows written/message | statements/message | of which reads | seconds |"
echo "|---|---|---|---|---|---|"
row() { # measured idle label
  read -r _ c w q r s <<<"$1"; read -r _ ic iw iq ir is <<<"$2"
  awk -v n="$N" -v c="$c" -v w="$w" -v q="$q" -v r="$r" -v ic="$ic" -v iw="$iw" -v iq="$iq" -v ir="$ir" -v s="$s" -v l="$3" \
    'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f | %.1f |\n", l, (c-ic)/n, (w-iw)/n, (q-iq)/n, (r-ir)/n, s }'
}
row "$one" "$idle1" "one at a time"
row "$many" "$idle2" "64 at once"
echo
echo "idle windows (subtracted): $idle1 / $idle2 (label commits rows statements reads seconds)"
