# The two front-door commands. Each sets itself up on a fresh machine (a venv in .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench soak setup setup-dev

# Set up and run the job on the local engine against the built-in Zoom simulator.
demo: setup
	$(BIN)/zoom-ingest demo

# Set up (with the test, Spark and benchmark extras) and run the whole test suite.
test: setup-dev
	$(BIN)/python -m pytest

# Backfill throughput against Zoom's rate limit, and incremental cost (about 15 minutes).
bench: setup-dev
	$(BIN)/python -m benchmarks.run

# Faults, kills and bad input against the simulator; rewrites docs/faults.md (about 5 minutes).
soak: setup-dev
	$(BIN)/python scripts/soak.py

lint: setup-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,dev,spark,bench]'
