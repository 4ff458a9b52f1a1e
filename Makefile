# Sentinel — `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
APT_PACKAGES := prometheus prometheus-alertmanager openssh-server chromium
PG_VERSION = $(shell ls /etc/postgresql 2>/dev/null | head -1)

.PHONY: help deps sysdeps services dashboard demo test lint fmt bench-ingest clean

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

deps: ## Install uv (if missing) and the locked Python dependencies
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet

sysdeps: ## Install the Debian packages the tests use (prometheus, alertmanager, sshd, chromium), when missing
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

services: ## Start PostgreSQL and Redis when they are down
	@pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done

lint: deps ## ruff, mypy --strict on src/, import-linter layer contracts
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench
	$(UV) run mypy
	$(UV) run lint-imports

fmt: deps ## Format and auto-fix
	$(UV) run ruff format src tests bench
	$(UV) run ruff check --fix src tests bench

dashboard: ## Install, type-check, build and unit-test the dashboard (prints the bundle size)
	cd dashboard && (npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error)
	cd dashboard && npm run build && npm test

# Two pytest workers, a test file each: most tests wait on processes and sockets, not CPU.
PYTEST_ARGS ?= -n 2 --dist loadfile
test: deps sysdeps services lint dashboard ## Everything: set-up, lint, dashboard, then pytest against the real services
	$(UV) run pytest -q $(PYTEST_ARGS)

SCENARIO ?= cpu-hog
demo: deps sysdeps services dashboard ## Run a sandbox scenario end to end on the embedded default (SCENARIO=cpu-hog)
	$(UV) run sentinel demo --scenario $(SCENARIO)

bench-ingest: deps services ## Alertmanager endpoint throughput/latency vs a bare Starlette endpoint
	$(UV) run python bench/ingest/run.py

clean: ## Remove local state (var/, caches)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
