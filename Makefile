# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements

.PHONY: setup demo weights test lint notebooks lab docs clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	# the face detector (utils/faces.py): --no-deps, or its stale metadata would replace torch
	$(PY) -m pip install --no-deps "facenet-pytorch==2.6.0"
	touch $(STAMP)

# The main job: train on the real data in files/ if it is split there, else on the built-in faces.
demo: setup
	$(PY) -m utils.demo

# The chapter's trained generators (hair.zip) into files/, checked; `make weights ARGS=--force`
# replaces a pair already there, `ARGS="--url path/to/hair.zip"` uses a zip downloaded by hand.
weights: setup
	$(PY) -m utils.published fetch $(ARGS)

# Everything CI runs: lint, the unit tests, then every notebook in fast mode.
test: setup
	$(PY) -m ruff check utils tests benchmarks notebooks
	$(PY) -m pytest tests
	CH06_FAST=1 $(PY) -m pytest --nbval-lax notebooks

# Write the .ipynb files from their py:percent twins (after editing a .py).
notebooks: setup
	$(PY) -m jupytext --sync notebooks/*.py

# JupyterLab for reading the notebooks locally (not needed by the tests).
lab: setup
	$(PY) -m pip install jupyterlab
	$(PY) -m jupyter lab notebooks

# The README's pictures in docs/.
docs: setup
	$(PY) -m utils.docs

clean-venv:
	rm -rf $(VENV)
