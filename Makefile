# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install lint fixtures clean

$(BIN)/balto: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/balto

install: $(BIN)/balto

run: install
	PORT=$(PORT) $(BIN)/balto serve --dev-key

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Regenerates the committed speech fixtures (needs espeak-ng and sox; tests never do).
fixtures:
	$(BIN)/python tests/fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) .balto .pytest_cache
