#!/usr/bin/env bash
# The send benchmark three ways in one run: one instance on SQLite, one on PostgreSQL, three
# on PostgreSQL sharing one database (the load spread round-robin over them); first with a
# simulator that answers at once (CPU-bound), then with WeChat's latency (100 ms), where an
# instance is bound by the sends it has in flight.
# Usage: bench/fleet.sh [postgres_server_url] [messages]
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${1:-postgres://postgres@127.0.0.1:5432/test}"
MESSAGES="${2:-20000}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for latency in 0 100; do
  for setup in "sqlite 1" "$PG 1" "$PG 3"; do
    set -- $setup
    SIM_LATENCY_MS=$latency bench/send.sh 2000 "$MESSAGES" 64 0 0 "$1" "$2" | tee -a "$out"
  done
done
echo
echo "| setup | accepted/s | sent/s end to end | accept p50 | accept p99 |"
echo "|---|---|---|---|---|"
paste -d'|' <(grep '^send benchmark' "$out" | sed -E 's/.*store ([a-z]+), ([0-9]+) instance\(s\), WeChat latency ([0-9]+) ms.*/\2 on \1, WeChat \3 ms/') \
  <(grep '^| throughput' "$out" | awk -F'|' '{print $3 "|" $4 "|" $5 "|" $6}') |
  sed -E 's/ accepted\/s//; s/ sent\/s end to end//; s/p50 //; s/p99 //' | sed 's/^/| /; s/$/ |/'
