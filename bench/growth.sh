#!/usr/bin/env bash
# Does a big account's database slow sending? The SQLite send benchmark (bench/send.sh,
# 20,000 messages, 64 clients) on a database already holding 10,000, 100,000 and 1,000,000
# finished messages (SEED_MESSAGES), then the same on PostgreSQL: sent/s and accept p99.
# Usage: bench/growth.sh [postgres_server_url]   (SIZES="10000 100000" to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${1:-postgres://postgres@127.0.0.1:5432/test}"
SIZES="${SIZES:-10000 100000 1000000}"
MESSAGES="${MESSAGES:-20000}"
rows=()
for store in sqlite "$PG"; do
  label=sqlite; [ "$store" = sqlite ] || label=postgres
  for n in $SIZES; do
    echo "growth: $label, $n stored messages" >&2
    o="$(SEED_MESSAGES=$n bench/send.sh 2000 "$MESSAGES" 64 0 0 "$store" 2>&1)"
    sent="$(grep -m1 '^| throughput' <<<"$o" | sed -E 's#.* ([0-9.]+) sent/s.*#\1#')"
    p99="$(grep -m1 '^| throughput' <<<"$o" | sed -E 's#.*p99 ([0-9.]+) ms.*#\1#')"
    rows+=("| $label | $n | $sent | $p99 ms |")
  done
done
echo
echo "send cost as the database grows, $(date -u +%Y-%m-%d), $(nproc) cores, $MESSAGES messages per row, 64 clients"
echo
echo "| store | finished messages stored before | sent/s end to end | accept p99 |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
