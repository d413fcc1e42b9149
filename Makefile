# The README's commands. Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check lint migrate sql-catalog bench bench-quick bench-levers bench-icount bench-observability bench-auth bench-profile bench-scale clean

run: $(VENV)/.run-installed
	$(BIN)/users-api serve

migrate: $(VENV)/.run-installed
	$(BIN)/users-api migrate

# Everything: the linters, then every test (CI runs this).
test: lint
	$(BIN)/pytest

# The edit-test loop: the linters, then the tests not marked slow (no server of their own, no load).
check: lint
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check api tests bench
	$(BIN)/ruff format --check api tests bench
	$(BIN)/sqlfluff lint sql migrations
	$(BIN)/squawk --exclude=prefer-robust-stmts migrations/*.sql
	$(BIN)/lint-imports
	$(BIN)/mypy

# sql/README.md, from the files' headers and their plans on a seeded table; make test checks it is current.
sql-catalog: $(VENV)/.dev-installed
	$(BIN)/pytest --quiet tests/test_catalog.py --write-sql-catalog

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.run

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python -m bench.run --quick

bench-levers: $(VENV)/.bench-installed
	$(BIN)/python -m bench.levers

bench-icount: $(VENV)/.bench-installed
	$(BIN)/python -m bench.icount

bench-observability: $(VENV)/.bench-installed
	$(BIN)/python -m bench.observability

bench-auth: $(VENV)/.bench-installed
	$(BIN)/python -m bench.auth

bench-profile: $(VENV)/.bench-installed
	$(BIN)/python -m bench.profile --workload $(or $(WORKLOAD),get)

bench-scale: $(VENV)/.bench-installed
	$(BIN)/python -m bench.scale

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embedded]'
	touch $@

# The dev extra and, beside it, the bench's: make test runs the bench's own tests and type checks too.
$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@ $(VENV)/.run-installed $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@ $(VENV)/.run-installed

clean:
	rm -rf $(VENV) .pgdata-test .pgdata-bench .pgdata-scale .mypy_cache .ruff_cache .schemathesis .import_linter_cache
