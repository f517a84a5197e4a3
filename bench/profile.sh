#!/usr/bin/env bash
# Where the time goes on the hot paths: the token route, sending (SQLite, WeChat answering
# at once) and safe-mode pushes, each benchmark run once with `perf record` on the service
# (bench/lib/perf.sh), then a flame graph per path (inferno, installed by this script into
# target/bench-tools) and the functions with the most samples of their own.
# Usage: bench/profile.sh [out_folder]    (default target/profile; needs perf)
# Profiled runs are slower than plain ones (DWARF unwinding): quote bench/all.sh's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-target/profile}")"
command -v perf >/dev/null || { echo "profile: needs perf (Debian: linux-perf)" >&2; exit 1; }
tools="$PWD/target/bench-tools"
if [ ! -x "$tools/bin/inferno-flamegraph" ]; then
  echo "profile: installing inferno (flame graphs) into $tools" >&2
  cargo install --quiet --locked inferno --version 0.12.8 --root "$tools"
fi
mkdir -p "$OUT"
export PERF_OUT="$OUT"
echo "profile: token route" >&2
bench/access-token.sh 10 64 > "$OUT/access-token.txt"
echo "profile: send, SQLite" >&2
bench/send.sh 2000 20000 64 0 0 > "$OUT/send.txt"
echo "profile: safe-mode pushes" >&2
bench/push.sh 10 64 > "$OUT/push.txt"
for name in access-token send push; do
  data="$OUT/$name.data"
  [ -s "$data" ] || { echo "profile: no samples for $name" >&2; continue; }
  perf script -i "$data" 2>/dev/null | "$tools/bin/inferno-collapse-perf" > "$OUT/$name.folded"
  "$tools/bin/inferno-flamegraph" --title "wxlink: $name" < "$OUT/$name.folded" > "$OUT/$name.svg"
  perf report -i "$data" --no-children --stdio --sort symbol -g none --percent-limit 1 2>/dev/null \
    | grep -E '^ +[0-9]' > "$OUT/$name.top" || true
  echo "== $name: $OUT/$name.svg; functions with the most samples of their own:"
  head -25 "$OUT/$name.top"
done
