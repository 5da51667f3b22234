# The two set-up commands of the README: `make run` and `make test`. Everything else here serves them.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint bench system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

## run: install into .venv, migrate the database, start contactd on the embedded defaults
run: $(BIN)/.installed
	$(BIN)/contactd migrate
	$(BIN)/contactd run

## test: install into .venv (and the Debian packages the tests use), lint, run the whole suite
test: $(BIN)/.installed system-deps
	$(BIN)/ruff check contactd tests bench
	$(BIN)/pytest -q -rs $(PYTEST_ARGS)

system-deps:
	@sh scripts/system-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check contactd tests bench

bench: $(BIN)/.installed
	$(BIN)/python bench/ami_throughput.py
	$(BIN)/python bench/agi_concurrency.py

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
