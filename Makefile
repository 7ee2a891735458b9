# The README's entry points. Each bootstraps .venv with pip on a machine that has only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
#: Exact versions that CI, `make venv` and the Docker image install; `make lock` writes them.
RUNTIME_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock
LOCK_VENV := var/lock-venv
#: Like pip-compile: `make lock` keeps the pins it can and adds what is new; `make lock UPGRADE=1`
#: re-resolves everything to the newest versions the ranges allow.
LOCK_CONSTRAINTS := $(if $(UPGRADE),,$(addprefix -c ,$(wildcard $(DEV_LOCK))))

.PHONY: venv demo test test-fast bench lint lock compose-check clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "notifyd needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	@touch $(STAMP)

# Resolve pyproject.toml's ranges in a clean venv and pin the result: the runtime set alone
# (what `pip install notifyd` brings, and what the image installs) and everything `make venv` needs.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet $(LOCK_CONSTRAINTS) .
	@mkdir -p requirements
	{ echo "# pip install -r $(RUNTIME_LOCK): notifyd's runtime dependencies, pinned. Written by make lock."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude notifyd | $(PYTHON) tools/lock_markers.py; } > $(RUNTIME_LOCK)
	$(LOCK_VENV)/bin/python -m pip install --quiet $(LOCK_CONSTRAINTS) '.[dev]'
	{ echo "# pip install -r $(DEV_LOCK): runtime, standins, bench and dev tools, pinned. Written by make lock."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude notifyd | $(PYTHON) tools/lock_markers.py; } > $(DEV_LOCK)
	rm -rf $(LOCK_VENV)

# Validate docker-compose.yml and the Prometheus/Grafana provisioning offline. The parse-based
# test always runs; docker compose and promtool add their own checks where they are installed.
compose-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_deploy_config.py
	@if docker compose version >/dev/null 2>&1; then NOTIFYD_API_KEYS=x NOTIFYD_SECRET_KEY=x docker compose config -q && echo "docker compose config: ok"; \
	elif command -v docker-compose >/dev/null 2>&1; then NOTIFYD_API_KEYS=x NOTIFYD_SECRET_KEY=x docker-compose config -q && echo "docker-compose config: ok"; \
	else echo "compose-check: no docker compose here; the parse-based test above checked the file"; fi
	@if command -v promtool >/dev/null 2>&1; then promtool check rules config/alerts.yml && promtool test rules config/alerts.test.yml; \
	else echo "compose-check: no promtool here; the parse-based test above checked the rules"; fi

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m notifyd.demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the slow chaos tests, for a quick local loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check notifyd channels tests benchmarks tools
	$(BIN)/mypy notifyd channels

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
