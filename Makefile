# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install lint wer fixtures clean

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
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# Word error rate of local Whisper on the committed fixtures (and ../shared/audio where present), plus
# the words it invents on real noise: run it after touching transcription to see regressions.
wer: install
	$(BIN)/balto wer

# Regenerates the committed speech fixtures (needs espeak-ng and sox; tests never do).
fixtures:
	$(BIN)/python tests/fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) .balto .pytest_cache
