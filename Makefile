# `make demo` and `make test` do all the set-up on a fresh machine (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv test test-fast demo lint bench clean

venv: $(VENV)/.installed

# torch==2.13.0 (a CPU build) goes in first: anything that pulls torch later finds it
# satisfied instead of downloading a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[export,bench,dev,serve]'
	touch $@

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# the same without the tests marked slow (torch exports and the torch reference): ~1 minute
test-fast: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# index the bundled sample documents (incremental: a second run skips unchanged files), then
# search them from the command line, fully offline
DEMO_INDEX := .cache/demo-index
demo: venv
	$(VENV)/bin/edgembed index models/samples --index $(DEMO_INDEX)
	$(VENV)/bin/edgembed search "how do I keep my bread starter alive" --index $(DEMO_INDEX) -k 3
	$(VENV)/bin/edgembed search "my wifi keeps dropping" --index $(DEMO_INDEX) -k 3
	$(VENV)/bin/edgembed search "what to do right after burning your hand" --index $(DEMO_INDEX) -k 3

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .cache
