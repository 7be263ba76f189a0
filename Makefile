# Everything a fresh machine needs, from Python >= 3.11, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when a package directory gains or loses a file (strict editable mode
# links each file, so new files need a re-install; edits do not).
SOURCES := pyproject.toml $(shell find daemon actors http sql -type d -not -name __pycache__ 2>/dev/null)

.PHONY: install run test lint bench chaos clean chromium pgbouncer

install: $(VENV)/.installed

$(VENV)/.installed: $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "deneva needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	@touch $@

run: install
	$(BIN)/deneva demo

# The browser tests (the connect flow, the OAuth authorize page) drive Debian's chromium (never a downloaded one).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| { echo "make test needs Debian's chromium: apt-get install -y chromium (as root)"; exit 1; }

# The chaos cases put Debian's PgBouncer in front of Postgres (tests/chaos/test_pgbouncer.py).
pgbouncer:
	@test -x /usr/sbin/pgbouncer || (apt-get update -qq && apt-get install -y -qq pgbouncer >/dev/null) \
		|| { echo "make test and make chaos need Debian's pgbouncer: apt-get install -y pgbouncer (as root)"; exit 1; }

test: install lint chromium pgbouncer
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check daemon actors http sql tests
	$(BIN)/ruff format --check daemon actors http sql tests
	$(BIN)/mypy -p deneva -p tests

bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]' --config-settings editable_mode=strict
	$(BIN)/deneva bench boot
	$(BIN)/deneva bench bridge
	$(BIN)/deneva bench engine --compare
	$(BIN)/deneva bench mcp
	$(BIN)/deneva bench sync --tenants 1000 --hours 24
	$(BIN)/deneva bench janitor

# The reliability suite at full size (docs/RELIABILITY.md): real deneva run processes on a
# Postgres of its own that it stops, restarts and kills; the figures table comes last.
# `make test` runs the same cases scaled down.
chaos: install pgbouncer
	DENEVA_CHAOS=full $(BIN)/python -m pytest -q --timeout=1800 tests/chaos

clean:
	rm -rf $(VENV) build *.egg-info
