#!/usr/bin/env bash
# Usage: start.sh PORT -- serve the Tasks API on 127.0.0.1:PORT the production way: migrate, then
# gunicorn with gunicorn.conf.py (the benchmark drives every server through this convention).
# Reads DATABASE_URL, BETTER_AUTH_SECRET and the rest of the settings from the environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PORT="${1:?usage: start.sh PORT}"
make --quiet .venv/bin/.installed
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/gunicorn -c gunicorn.conf.py todo_project.wsgi:application
