# The front door: each target does one thing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export FEATURE_LIVE_SHOPPING_ENABLED ?= true

.PHONY: run test test-slow lint format bench migrate seed gen-client check-client clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) migrate seed ## serve on $HOST:$PORT (default 127.0.0.1:8000), SQLite by default
	@echo "Sign-in links for the demo users (console for staff, room for a client in a session):"
	@$(BIN)/python -m app token --link
	$(BIN)/python -m app serve

test: $(STAMP) ## the test suite (MariaDB/Redis tests skip when absent unless REQUIRE_SERVICES=1)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) ## tests that wait real time (hold timeouts, presence) or sweep large matrices
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app procedures

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## benchmarks in tests/bench (not part of make test)
	$(BIN)/python -m tests.bench

migrate: $(STAMP)
	$(BIN)/python -m app migrate

seed: $(STAMP)
	$(BIN)/python -m app seed --demo

gen-client: $(STAMP)
	$(BIN)/python -m app gen-client

check-client: $(STAMP)
	$(BIN)/python -m app gen-client --check

clean:
	rm -rf $(VENV) liveshop.db liveshop.db-shm liveshop.db-wal
