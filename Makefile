# The two front-door commands. Each sets itself up on a fresh machine (a venv in .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The genuine Databricks CLI that tests/test_bundle_cli.py runs on the bundle: built from
# its Go module, or from its vendored source when the module proxy refuses it, into
# .cache/bin (scripts/databricks_cli.sh). 0.281.0 is the oldest the bundle accepts
# (databricks.yml: bundle.databricks_cli_version).
DATABRICKS_CLI_VERSION ?= 1.13.0

.PHONY: demo test lint bench soak mutation setup setup-dev cli jars

# Delta Lake's jars for the Spark engine's tests, matching the pinned pyspark 4.0.1
# (pyproject.toml's `spark` extra): fetched once from Maven Central into a cache folder
# this Makefile owns, then used offline. ZOOM_INGEST_DELTA_JARS, when set, wins.
DELTA_VERSION := 4.0.1
DELTA_ARTIFACTS := io.delta:delta-spark_2.13:$(DELTA_VERSION) io.delta:delta-storage:$(DELTA_VERSION)
JARS_DIR := $(CURDIR)/.cache/jars
export ZOOM_INGEST_DELTA_JARS ?= $(JARS_DIR)

# Set up and run the job on the local engine against the built-in Zoom simulator.
demo: setup
	$(BIN)/zoom-ingest demo

# Set up (with the test, Spark and benchmark extras) and run the whole test suite. The CLI
# builds in the background meanwhile (minutes on a cold Go cache, seconds on a warm one);
# the tests that run it come last and wait for the build (tests/test_bundle_cli.py).
test: setup-dev jars
	@mkdir -p .cache
	@DATABRICKS_CLI_VERSION=$(DATABRICKS_CLI_VERSION) scripts/databricks_cli.sh \
		>.cache/cli-build.out 2>&1 & echo $$! >.cache/cli-build.pid; \
	$(BIN)/python -m pytest; status=$$?; \
	cat .cache/cli-build.out; rm -f .cache/cli-build.pid; exit $$status

# Only the genuine Databricks CLI and the workspace stand-in, into .cache/bin.
cli:
	DATABRICKS_CLI_VERSION=$(DATABRICKS_CLI_VERSION) scripts/databricks_cli.sh

# Backfill throughput against Zoom's rate limit, four account shapes (two read in a zone
# other than UTC), and incremental cost (about 20 minutes);
# then the Spark engine beside the local one (merge cost, incremental on 10M rows).
bench: setup-dev jars
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.spark

# Faults, kills and bad input against the simulator; rewrites docs/faults.md (about 5 minutes).
soak: setup-dev
	PYTHONPATH=tests $(BIN)/python scripts/soak.py

# Mutation testing of the plan, the parsing and lw_id, and the writer's cursor logic
# against their fast tests ([tool.mutmut] in pyproject.toml); prints the score per file.
# Not part of `make test`: it takes 20-40 minutes on 2 cores. See docs/mutation.md.
MUTMUT_CHILDREN ?= 2
# In job.py: the writer's events, flushes, committer and cursor; the runs rows; in
# zoom/: the fetch threads (stop/abort, one end a window), the scheduler's take/release
# (every window handed out exactly once, until all have ended) and Zoom's time format.
# The scheduler's ordering heuristics (_priority, _should_open, target, end_game) decide
# throughput, not what is committed, and are left out.
JOB_WRITER := _handle _window_failed _flush_if_due _flush _raise_commit_error \
	_commit_loop _commit _advance_cursor
MUTANTS := 'zoom_ingest.plan.*' 'zoom_ingest.normalise.*' 'zoom_ingest.tables.*' \
	'zoom_ingest.zoom.rules.*' 'zoom_ingest.zoom.times.*' \
	$(foreach f,$(JOB_WRITER),'zoom_ingest.job.x?_Writer?$(f)__mutmut_*') \
	'zoom_ingest.zoom.fetcher.x?Fetcher?_fetch__mutmut_*' \
	$(foreach f,take release,'zoom_ingest.zoom.schedule.x?Scheduler?$(f)__mutmut_*') \
	'zoom_ingest.run_state.x_runs_rows__mutmut_*'
mutation: setup-dev
	$(BIN)/pip install --quiet mutmut==3.8.1
	$(BIN)/mutmut run --max-children $(MUTMUT_CHILDREN) $(MUTANTS) > mutants.log 2>&1 || (tail -c 3000 mutants.log; exit 1)
	$(BIN)/python scripts/mutation_report.py

# The jars (delta-spark's other dependencies, antlr4-runtime and Scala, ship with pyspark).
# Without mvn or a route to Maven Central this says so and goes on: the Delta tests then
# skip and say how to get the jars (under CI=true they fail instead).
jars: $(JARS_DIR)/.fetched

$(JARS_DIR)/.fetched:
	@mkdir -p $(JARS_DIR)
	@if ! command -v mvn >/dev/null 2>&1; then \
	  echo "jars: mvn not found; the Spark + Delta tests will skip (see DEVELOPERS.md)"; \
	else \
	  ok=1; for artifact in $(DELTA_ARTIFACTS); do \
	    echo "jars: fetching $$artifact into $(JARS_DIR)"; \
	    mvn -q -B dependency:copy -Dartifact=$$artifact -DoutputDirectory=$(JARS_DIR) \
	      -Dmdep.overWriteIfNewer=true >$(JARS_DIR)/mvn.log 2>&1 || { ok=0; break; }; \
	  done; \
	  if [ $$ok = 1 ]; then touch $@; \
	  else echo "jars: could not fetch $$artifact (see $(JARS_DIR)/mvn.log); the Spark + Delta tests will skip"; fi; \
	fi

lint: setup-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,dev,spark,bench]'
