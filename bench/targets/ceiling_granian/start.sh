#!/usr/bin/env bash
# Usage: start.sh PORT -- the framework-free WSGI ceiling (../shared/peers/raw_wsgi, its own
# venv, made by its start.sh) served by granian instead of gunicorn, shaped as
# bench/targets/granian: what any WSGI application could answer behind granian on this machine
# (docs/performance.md uses it to bound the 401 path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
PEER="$ROOT/../shared/peers/raw_wsgi"
VENV="${PEERS_VENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tasks-api-peers}/venv-rawwsgi"
export PORT="${1:?usage: start.sh PORT}"
export DATABASE_URL="${DATABASE_URL:-postgresql://root@127.0.0.1:5432/peer_raw}"
export BETTER_AUTH_SECRET="${BETTER_AUTH_SECRET:-bench-secret-bench-secret-bench-secret-0123}"
[ -x "$VENV/bin/python" ] || { echo "run $PEER/start.sh once first (it makes $VENV)" >&2; exit 1; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$PEER"
"$VENV/bin/python" init_db.py
PYTHONPATH="$HERE:$PEER:$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export PYTHONPATH
exec "$ROOT/.venv/bin/granian" --interface wsgi --host 127.0.0.1 --port "$PORT" \
  --workers "${GRANIAN_WORKERS:-$(nproc)}" --blocking-threads "${GRANIAN_BLOCKING_THREADS:-2}" \
  --no-ws --log-level warning served:application
