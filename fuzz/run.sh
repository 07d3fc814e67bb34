#!/usr/bin/env bash
# Fuzz the Tasks API with schemathesis against a live server (gunicorn + PostgreSQL).
#
#   DATABASE_URL=postgres://root@127.0.0.1:5432/postgres bash fuzz/run.sh [extra schemathesis args]
#
# Starts the service on a fresh PostgreSQL database (fuzz/launch.py, with the service's .venv),
# mints tokens for two users, and runs every schemathesis check (response schema conformance
# included) over every operation: examples, coverage, fuzzing (FUZZ_MAX_EXAMPLES per operation)
# and stateful phases, with a fixed seed. Reports go to fuzz/report/. Exit 0 only with no failure;
# 2 when DATABASE_URL is not PostgreSQL.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
PYTHON="${PYTHON:-python3}"
SERVICE_PYTHON="$ROOT/.venv/bin/python"
VENV="$FUZZ_DIR/.venv"
REPORT_DIR="$FUZZ_DIR/report"
SEED="${FUZZ_SEED:-20260109}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-300}"
# One schemathesis worker: tests of different operations running at once change the pool of
# known task ids under each other, and Hypothesis then ends an operation's fuzzing early
# ("flaky strategy"). The service keeps the other core (2 gunicorn workers x 4 threads).
WORKERS="${FUZZ_WORKERS:-1}"
started=$(date +%s)

case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*|pgsql://*) ;;
  *) echo "fuzz: DATABASE_URL must name a PostgreSQL database (postgres://user@host:port/db)" >&2; exit 2 ;;
esac
if [[ ! -x "$SERVICE_PYTHON" ]]; then
  echo "fuzz: $SERVICE_PYTHON is missing: create the service's virtualenv first (make test does)" >&2
  exit 1
fi

# The fuzzer's own virtualenv, rebuilt when its lock (pyproject.toml's fuzz group, `make lock`) is
# newer than the last install.
stamp="$VENV/.installed"
if [[ ! -f "$stamp" || "$FUZZ_DIR/requirements.txt" -nt "$stamp" ]]; then
  echo "fuzz: installing schemathesis into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r "$FUZZ_DIR/requirements.txt"
  touch "$stamp"
fi

rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
state="$(mktemp -d)"
launcher_pid=""
cleanup() {
  if [[ -n "$launcher_pid" ]] && kill -0 "$launcher_pid" 2>/dev/null; then
    kill -TERM "$launcher_pid" 2>/dev/null || true
    wait "$launcher_pid" 2>/dev/null || true
  fi
  [[ -f "$state/server.log" ]] && cp "$state/server.log" "$REPORT_DIR/server.log"
  rm -rf "$state"
}
trap cleanup EXIT

# The service, on a fresh database. The launcher serves until it gets SIGTERM.
"$SERVICE_PYTHON" "$FUZZ_DIR/launch.py" "$state" &
launcher_pid=$!
for _ in $(seq 1 600); do
  [[ -f "$state/server.env" ]] && break
  if ! kill -0 "$launcher_pid" 2>/dev/null; then
    wait "$launcher_pid" && rc=0 || rc=$?
    launcher_pid=""
    echo "fuzz: the service did not start (exit $rc)" >&2
    exit "$rc"
  fi
  sleep 0.1
done
[[ -f "$state/server.env" ]] || { echo "fuzz: the service did not start within 60 s" >&2; exit 1; }
# shellcheck source=/dev/null
source "$state/server.env"
export FUZZ_AUTH_FILE="$state/auth.json"
echo "fuzz: service at $FUZZ_URL ($(( $(date +%s) - started ))s)"

export SCHEMATHESIS_HOOKS="$FUZZ_DIR/hooks.py"
rc=0
(cd "$FUZZ_DIR" && "$VENV/bin/schemathesis" --config-file "$FUZZ_DIR/schemathesis.toml" run \
  "$FUZZ_URL/v1/schema?format=json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers "$WORKERS" \
  --request-timeout 15 \
  --no-color \
  --report junit,ndjson \
  --report-dir "$REPORT_DIR" \
  --report-junit-path "$REPORT_DIR/junit.xml" \
  --report-ndjson-path "$REPORT_DIR/events.ndjson" \
  "$@") || rc=$?

"$VENV/bin/python" "$FUZZ_DIR/summary.py" "$REPORT_DIR/events.ndjson" || true
echo "fuzz: finished in $(( $(date +%s) - started ))s, schemathesis exit $rc"
exit "$rc"
