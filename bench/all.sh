#!/usr/bin/env bash
# Every benchmark in one run, each row RUNS times (default 3), one table of medians with
# each figure's ratio to the floor or peer measured in the same run: the bare axum route
# (examples/trivial_server.rs) and the baseline service (bench/baseline/: Flask + wechatpy +
# SQLite under gunicorn, sending synchronously to the same simulator).
# Usage: bench/all.sh [postgres_server_url]      (RUNS=1 for a quick look)
# Release builds; the load comes from separate processes (wrk, examples/*_load.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${1:-postgres://postgres@127.0.0.1:5432/test}"
RUNS="${RUNS:-3}"
MESSAGES="${MESSAGES:-30000}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
echo "bench/all.sh: building release binaries" >&2
cargo build --release --quiet --locked --bin wxlink --examples

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
log="$out/log"
rec() { echo "$2" >> "$out/$1"; } # metric value
field() { grep -m1 "$1" | sed -E "s#.*$2.*#\\1#"; } # line-pattern, value-pattern with one (group)

# One run of each benchmark; progress on stderr, raw output kept in $log.
once() {
  local r="$1" o
  echo "run $r/$RUNS: access token route and the bare axum route" >&2
  o="$(bench/access-token.sh 10 64 2>&1 | tee -a "$log")"
  rec bare "$(awk -F'|' '$2 ~ /^ trivial / {gsub(/ /,"",$3); print $3}' <<<"$o")"
  rec token "$(awk -F'|' '$2 ~ /^ access-token / {gsub(/ /,"",$3); print $3}' <<<"$o")"

  echo "run $r/$RUNS: send, SQLite, then a steady 1,000 req/s" >&2
  o="$(bench/send.sh 2000 "$MESSAGES" 64 1000 10 sqlite 2>&1 | tee -a "$log")"
  rec send_sqlite "$(field '^| throughput' ' ([0-9.]+) sent/s' <<<"$o")"
  rec accept_p99 "$(field '^| fixed rate' 'p99 ([0-9.]+)' <<<"$o")"
  rec rss_idle "$(field '^| memory' 'idle ([0-9.]+)' <<<"$o")"
  rec rss_load "$(field '^| memory' 'load ([0-9.]+)' <<<"$o")"

  echo "run $r/$RUNS: the baseline (Flask + wechatpy + SQLite)" >&2
  o="$(SEND_TARGET=baseline bench/send.sh 2000 10000 64 0 0 sqlite 2>&1 | tee -a "$log")"
  rec baseline "$(field '^| throughput' ' ([0-9.]+) sent/s' <<<"$o")"
  rec baseline_rss "$(field '^| memory' 'load ([0-9.]+)' <<<"$o")"

  echo "run $r/$RUNS: send, one instance on PostgreSQL" >&2
  o="$(bench/send.sh 2000 "$MESSAGES" 64 0 0 "$PG" 1 2>&1 | tee -a "$log")"
  rec send_pg "$(field '^| throughput' ' ([0-9.]+) sent/s' <<<"$o")"

  for ms in 50 100; do
    echo "run $r/$RUNS: send, SQLite, WeChat answering in $ms ms" >&2
    o="$(SIM_LATENCY_MS=$ms bench/send.sh 2000 10000 64 0 0 sqlite 2>&1 | tee -a "$log")"
    rec "send_lat$ms" "$(field '^| throughput' ' ([0-9.]+) sent/s' <<<"$o")"
  done

  echo "run $r/$RUNS: safe-mode pushes, SQLite" >&2
  o="$(bench/push.sh 10 64 2>&1 | tee -a "$log")"
  rec push "$(field '^pushes=' 'pushes_per_sec=([0-9.]+)' <<<"$o")"
  rec push_p99 "$(field '^pushes=' 'p99_ms=([0-9.]+)' <<<"$o")"
}
for r in $(seq 1 "$RUNS"); do once "$r"; done

median() { # metric -> the median of its runs ("?" when a run gave nothing)
  [ -s "$out/$1" ] || { echo "?"; return; }
  sort -n "$out/$1" | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a=="?" || b=="?" || b==0) print "?"; else printf f, a/b }'; }
spread() { [ -s "$out/$1" ] && sort -n "$out/$1" | paste -sd/ || echo "?"; }

bare="$(median bare)"; token="$(median token)"; base="$(median baseline)"
sq="$(median send_sqlite)"; pg="$(median send_pg)"
echo
echo "wxlink benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), median of $RUNS run(s)"
echo
echo "| path | median | runs | ratio | target |"
echo "|---|---|---|---|---|"
echo "| bare axum route (floor) | $bare req/s | $(spread bare) | 1.00 | |"
echo "| GET /api/v1/apps/{app}/access-token | $token req/s | $(spread token) | $(ratio "$token" "$bare" '%.2f of the bare route') | >= 0.85 of the bare route |"
echo "| baseline: Flask + wechatpy + SQLite, synchronous (peer) | $base sent/s | $(spread baseline) | 1.00 | |"
echo "| send by user id, SQLite, end to end | $sq sent/s | $(spread send_sqlite) | $(ratio "$sq" "$base" '%.1fx the baseline') | >= 8,000 sent/s and >= 8x the baseline |"
echo "| send by user id, one instance on PostgreSQL | $pg sent/s | $(spread send_pg) | $(ratio "$pg" "$base" '%.1fx the baseline') | >= 5,000 sent/s |"
echo "| send, WeChat answering in 50 ms | $(median send_lat50) sent/s | $(spread send_lat50) | $(ratio "$(median send_lat50)" "$sq" '%.2f of 0 ms') | |"
echo "| send, WeChat answering in 100 ms | $(median send_lat100) sent/s | $(spread send_lat100) | $(ratio "$(median send_lat100)" "$sq" '%.2f of 0 ms') | >= 3,000 sent/s |"
echo "| accept at a steady 1,000 req/s, p99 | $(median accept_p99) ms | $(spread accept_p99) | | <= 5 ms |"
echo "| safe-mode pushes, SQLite | $(median push) pushes/s (p99 $(median push_p99) ms) | $(spread push) | | >= 15,000 pushes/s |"
echo "| resident memory, idle | $(median rss_idle) MB | $(spread rss_idle) | | <= 30 MB |"
echo "| resident memory, after the SQLite send run | $(median rss_load) MB | $(spread rss_load) | $(ratio "$(median rss_load)" "$(median baseline_rss)" '%.2f of the baseline') | <= 100 MB |"
echo "| baseline's resident memory (every gunicorn process), after its run | $(median baseline_rss) MB | $(spread baseline_rss) | | |"
