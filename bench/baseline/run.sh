#!/usr/bin/env bash
# Starts the baseline (Flask + wechatpy + SQLite under gunicorn) in the foreground,
# installing it first into its own virtual environment (target/bench-baseline/venv).
# Usage: bench/baseline/run.sh LISTEN SIM_BASE DB_FILE [workers]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../../target/bench-baseline/venv"
if [ ! -x "$venv/bin/gunicorn" ] || ! "$venv/bin/python3" -c 'import flask, wechatpy' 2>/dev/null; then
  echo "baseline: installing Flask, gunicorn and wechatpy into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
LISTEN="$1"; SIM="$2"; DB="$3"; WORKERS="${4:-$(( $(nproc) * 2 ))}"
cd "$here"
exec env BASELINE_SIM="$SIM" BASELINE_DB="$DB" "$venv/bin/gunicorn" --bind "$LISTEN" \
  --workers "$WORKERS" --worker-class gthread --threads 8 --log-level warning app:app
