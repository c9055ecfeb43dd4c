# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install lint fixtures bench-speakers clean

$(BIN)/balto: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first (it lies in /opt/wheels here and on CI), so no dependency pulls CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
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
	$(BIN)/python tests/fixtures/make_speaker_fixtures.py

# Speaker identification: accuracy on 6 real voices (../shared/audio) or the fixtures, and the cost.
bench-speakers: install
	$(BIN)/python -m bench.speakers

clean:
	rm -rf $(VENV) .balto .pytest_cache
