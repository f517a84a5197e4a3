#!/usr/bin/env bash
# Where the machine's CPU went while a command ran: CPU seconds per program (wxlink, the
# simulator, the load generator, postgres, ...; `wxlink serve` and `wxlink sim` apart), summed over their processes (all threads),
# sampled every half second, and the share of the cores' time left idle. Meant for the
# benchmarks' long-lived processes: a process living under half a second may be missed.
# Usage: bench/cpu-share.sh COMMAND [ARGS...]     e.g. bench/cpu-share.sh bench/send.sh 2000 20000
# The command's own output comes first, then the table (to stderr).
set -euo pipefail
tick="$(getconf CLK_TCK)"
snapshot() { # -> "pid comm ticks" for every live process, children included
  for s in /proc/[0-9]*/stat; do
    { read -r line < "$s"; } 2>/dev/null || continue
    pid="${line%% *}"; rest="${line#*(}"; comm="${rest%)*}"; tail="${rest##*) }"
    # fields after comm: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    set -- $tail
    # The service and the simulator are one binary: named by their subcommand.
    if [ "$comm" = wxlink ]; then
      mapfile -d '' -t args < "/proc/$pid/cmdline" 2>/dev/null || args=()
      for a in "${args[@]}"; do case "$a" in serve|sim) comm="wxlink-$a" ;; esac; done
    fi
    echo "$pid $comm $(( ${12} + ${13} ))"
  done
}
idle() { awk '/^cpu / {print $5 + $6}' /proc/stat; }
total() { awk '/^cpu / {s=0; for (i=2; i<=NF; i++) s+=$i; print s}' /proc/stat; }
before="$(mktemp)"; after="$(mktemp)"; trap 'rm -f "$before" "$after"' EXIT
snapshot > "$before"; i0="$(idle)"; t0="$(total)"
# Processes that end during the run are caught by sampling every half second.
seen="$(mktemp)"
( while :; do snapshot >> "$seen"; sleep 0.5; done ) & sampler=$!
"$@" || status=$?
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
snapshot >> "$seen"; i1="$(idle)"; t1="$(total)"
# Per pid, the last ticks seen minus the ticks before (0 for processes that started after).
awk -v tick="$tick" -v busy="$(( (t1 - t0) - (i1 - i0) ))" -v all="$(( t1 - t0 ))" '
  FNR == NR { start[$1] = $3; next }
  { last[$1] = $3; name[$1] = $2 }
  END {
    for (p in last) { d = last[p] - start[p]; if (d > 0) by[name[p]] += d }
    printf "| program | CPU seconds | share of busy time |\n|---|---|---|\n" > "/dev/stderr"
    n = asorti(by, order, "@val_num_desc")
    for (i = 1; i <= n && i <= 8; i++)
      printf "| %s | %.1f | %.0f%% |\n", order[i], by[order[i]] / tick, 100 * by[order[i]] / (busy ? busy : 1) > "/dev/stderr"
    printf "| (idle) | %.1f | %.0f%% of all core time |\n", (all - busy) / tick, 100 * (all - busy) / (all ? all : 1) > "/dev/stderr"
  }' "$before" "$seen"
exit "${status:-0}"
