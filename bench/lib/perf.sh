# Sourced by the benchmarks. With PERF_OUT=<folder> set, `perf_start NAME PID` records the
# process's stacks (DWARF unwinding, 499 Hz) into <folder>/NAME.data until `perf_stop`;
# bench/profile.sh turns them into flame graphs. Without PERF_OUT both do nothing, so the
# figures of a normal run are not disturbed.
perf_pid=
perf_start() { # name pid
  [ -n "${PERF_OUT:-}" ] || return 0
  mkdir -p "$PERF_OUT"
  perf record -q -F 499 --call-graph dwarf,16384 -o "$PERF_OUT/$1.data" -p "$2" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
}
perf_stop() {
  [ -n "$perf_pid" ] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
}
