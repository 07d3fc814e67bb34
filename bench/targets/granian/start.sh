#!/usr/bin/env bash
# Usage: start.sh PORT -- this repository's service as ../../../start.sh serves it, but with
# granian's WSGI interface in place of gunicorn: a bench/run.py target for side-by-side runs
# (docs/performance.md). GRANIAN_WORKERS (default: one per CPU) and GRANIAN_BLOCKING_THREADS
# (default 2, as gunicorn's threads) set its shape.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
export PORT="${1:?usage: start.sh PORT}"
make --quiet .venv/bin/.installed
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
  -r bench/requirements.txt
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/granian --interface wsgi --host 127.0.0.1 --port "$PORT" \
  --workers "${GRANIAN_WORKERS:-$(nproc)}" --blocking-threads "${GRANIAN_BLOCKING_THREADS:-2}" \
  --no-ws --log-level warning todo_project.wsgi:application
