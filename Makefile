# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install lint wer fixtures clean bench bench-soak bench-frontend bench-cleaner bench-vad bench-speakers bench-gate

$(BIN)/balto: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first (it lies in /opt/wheels here and on CI), so no dependency pulls CUDA.
	# Elsewhere: make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[dev,bench]'
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

# Word error rate of local Whisper on the committed fixtures (and ../shared/audio where present), plus
# the words it invents on real noise: run it after touching transcription to see regressions.
wer: install
	$(BIN)/balto wer

# Regenerates the committed speech fixtures (needs espeak-ng and sox; tests never do).
fixtures:
	$(BIN)/python tests/fixtures/make_fixtures.py
	$(BIN)/python tests/fixtures/make_speaker_fixtures.py

# The server under load: N counters streaming in real time over /ws (docs/performance.md).
# Latency end-of-speech -> transcript/card, CPU, RSS, live vs offline WER; JSON + PNG in docs/measurements/bench.
BENCH_COUNTERS ?= 1 8 16 24 32
BENCH_SECONDS ?= 120
bench: install
	$(BIN)/python -m bench.server --counters $(BENCH_COUNTERS) --seconds $(BENCH_SECONDS)

# The server under a steady load for an hour, counters reconnecting every 5 minutes: latency and CPU per
# 5-minute window, RSS/descriptors/tasks over time, what outlives the load, nothing lost (docs/performance.md).
SOAK_COUNTERS ?= 8
SOAK_MINUTES ?= 60
bench-soak: install
	$(BIN)/python -m bench.soak --counters $(SOAK_COUNTERS) --minutes $(SOAK_MINUTES)

# Speaker identification: accuracy on 6 real voices (../shared/audio) or the fixtures, and the cost.
bench-speakers: install
	$(BIN)/python -m bench.speakers

# Front-end cost: decode + VAD CPU-seconds per audio-second per stream, and memory per connection.
bench-frontend: install
	$(BIN)/python -m bench.frontend --streams 8 --seconds 120 --speed 4 --cleaner --json docs/measurements/frontend.json

# Where to run the noise reduction: CPU, VAD decisions and WER at 20/10/5 dB SNR.
bench-cleaner: install
	$(BIN)/python -m bench.cleaner --seeds 1 2 --noise blanket_coffee-shop.wav blanket_city.wav --variants off chunks segments

# The speech gate: what Silero drops among the VAD's segments, WER with and without it, Whisper CPU saved.
bench-gate: install
	$(BIN)/python -m bench.gate --json docs/measurements/gate.json

# Segmenter timing (pre-roll, hang-over, minimum) by WER and segment count.
bench-vad: install
	$(BIN)/python -m bench.vad_params --json docs/measurements/vad_params.json

clean:
	rm -rf $(VENV) .balto .pytest_cache
