# `make demo` and `make test` do all the set-up on a fresh machine (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv system-deps test test-fast demo lint bench clean

venv: $(VENV)/.installed

# torch==2.13.0 (a CPU build) goes in first: anything that pulls torch later finds it
# satisfied instead of downloading a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[export,bench,dev,serve,docs,watch,langchain,llamaindex,mteb,ray,lancedb,openvino]'
	touch $@

# Debian packages some tests run for real (qemu-user: an emulated AVX2-only CPU for the
# int8 tests; chromium and chromium-driver: the search page in a headless browser).
# Installed where the machine allows it (root with apt-get); elsewhere those tests skip
# and name the package to install.
SYSTEM_PACKAGES := qemu-user chromium chromium-driver
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  for package in $(SYSTEM_PACKAGES); do \
	    dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1; } \
	      || echo "could not install$$missing: the tests that need it will skip"; \
	  fi; \
	fi

test: venv system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# the same without the tests marked slow (torch exports and the torch reference): about 5
# minutes on 2 cores (docs/testing.md)
test-fast: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# index the bundled sample documents, text, Markdown, PDF, HTML, Word, OpenDocument and
# e-mail (incremental: a second run skips unchanged files), then search them from the
# command line with hybrid ranking (embeddings and keywords), fully offline
DEMO_INDEX := .cache/demo-index
demo: venv
	$(VENV)/bin/edgembed index models/samples --index $(DEMO_INDEX)
	$(VENV)/bin/edgembed search "what does error E24 mean" --index $(DEMO_INDEX) -k 3
	$(VENV)/bin/edgembed search "is stream water safe to drink" --index $(DEMO_INDEX) -k 3
	$(VENV)/bin/edgembed search "how do I keep my bread starter alive" --index $(DEMO_INDEX) -k 3
	$(VENV)/bin/edgembed search "what to do right after burning your hand" --index $(DEMO_INDEX) -k 3
	@echo "browse them: $(VENV)/bin/edgembed serve --index $(DEMO_INDEX), then open http://127.0.0.1:8000/"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .cache
