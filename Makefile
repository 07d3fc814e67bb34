# The two front-door commands: `make run` (serve the API for development) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
BENCH_ARGS ?= --two-instances

.PHONY: run test lint typecheck format schema bench soak failover clean lock upgrade-bench docs docs-build

# Installs the lock (pyproject.toml's dependencies and dev group, every file checked against its
# hash) with the venv's own pip: nothing is fetched that the lock does not name.
$(BIN)/.installed: requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) || { echo "'$(PYTHON) -m venv' failed: on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	@touch $@

# Rewrites the four locks from pyproject.toml. uv keeps each pin already in a lock unless
# pyproject.toml asks for another, so this upgrades nothing by itself; tasks/tests/test_lock.py
# fails while pyproject.toml and the locks disagree.
LOCK = $(BIN)/uv pip compile --quiet --universal --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
lock: $(BIN)/.installed
	$(LOCK) pyproject.toml -o requirements.txt
	$(LOCK) pyproject.toml --group dev -o requirements-dev.txt
	$(LOCK) pyproject.toml --group bench -c requirements-dev.txt -o bench/requirements.txt
	$(LOCK) --group pyproject.toml:fuzz -o fuzz/requirements.txt

# A development configuration: DEBUG on and a random signing secret. Never used in production:
# gunicorn refuses to start with DEBUG on unless GUNICORN_ALLOW_DEBUG=true.
.env:
	@printf 'DEBUG=true\nBETTER_AUTH_SECRET=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))')" > .env
	@echo "Wrote a development .env (DEBUG on, random BETTER_AUTH_SECRET)."

run: $(BIN)/.installed .env
	$(BIN)/python manage.py migrate --noinput
	@echo
	@echo "Serving the Tasks API on http://127.0.0.1:$(PORT) (Ctrl-C stops it). Try:"
	@echo "  curl -H \"Authorization: Bearer $$($(BIN)/python manage.py issue_token dev-user --ttl 86400)\" http://127.0.0.1:$(PORT)/v1/tasks"
	@echo "Docs: http://127.0.0.1:$(PORT)/v1/docs   Browsable API: http://127.0.0.1:$(PORT)/dev/login"
	@echo
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: $(BIN)/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy with the Django and DRF plugins; what it checks, strictly or not, is in pyproject.toml.
typecheck: $(BIN)/.installed
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A benchmark against the FastAPI peer and the framework-free ceiling (needs PostgreSQL).
bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r bench/requirements.txt
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Migration 0007 (task lists) on 1,000,000 tasks while the previous release writes (needs
# PostgreSQL; recreates the database upgrade_bench). Fails on a changed row or an operation over
# 1 s; prints the figures in docs/postgresql.md.
upgrade-bench: $(BIN)/.installed
	$(BIN)/python bench/upgrade.py $(UPGRADE_BENCH_ARGS)

# Concurrent clients, a worker killed mid-run; fails on any lost write or cross-user leak.
soak: $(BIN)/.installed
	DATABASE_URL="$${DATABASE_URL:-postgres://root@127.0.0.1:5432/test}" $(BIN)/python soak/run.py $(SOAK_ARGS)

# The soak's load while the primary dies and its synchronous standby is promoted (two clusters of
# their own on ports 5433/5434, made and removed by failover/cluster.sh; run as root). Fails on any
# wrong answer, lost or resurrected write, or leak; prints the gap. See docs/failover.md.
failover: $(BIN)/.installed
	bash .ci/failover-test $(FAILOVER_ARGS)

# The documentation site (mkdocs.yml, docs/): `make docs` serves it with live reload on DOCS_PORT;
# `make docs-build` builds it into site/, failing on any broken link or anchor (.ci/run does too).
DOCS_PORT ?= 8001
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site

# The OpenAPI contract is generated from the code; a test fails when the committed file drifts.
schema: $(BIN)/.installed
	DEBUG=false BETTER_AUTH_SECRET=schema-generation-only-0123456789abcdef $(BIN)/python manage.py spectacular --validate --fail-on-warn --file specs/001-backend-api-data/contracts/tasks.openapi.yaml
