# Two commands on a fresh machine: `make demo` and `make test`; `make lab` opens the notebooks.
# Each sets itself up in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements
LAB_STAMP := $(VENV)/.installed-lab
# Jupyter refuses to start as root ("Running as root is not recommended") unless told: a
# container or a cloud machine often runs as root, so the flag is added there and only there.
AS_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

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

# Everything CI runs: lint, the tests (tests/test_notebooks_run.py runs every notebook in fast
# mode and reads what it prints as a reader would), then nbval, which executes every committed
# notebook's cells in fast mode as Jupyter does.
test: setup
	$(PY) -m ruff check utils tests benchmarks notebooks
	$(PY) -m pytest tests
	CH06_FAST=1 $(PY) -m pytest --nbval-lax notebooks

# Write the .ipynb files from their py:percent twins (after editing a .py).
notebooks: setup
	$(PY) -m jupytext --sync notebooks/*.py

# The notebooks in JupyterLab, in your browser: installs JupyterLab into .venv the first time
# (requirements-lab.txt; `make test` does not need it), then opens notebooks/. Ctrl-C stops it.
lab: $(LAB_STAMP)
	$(PY) -m jupyterlab $(AS_ROOT) notebooks

$(LAB_STAMP): requirements-lab.txt $(STAMP)
	$(PY) -m pip install -r requirements-lab.txt
	touch $(LAB_STAMP)

# The README's pictures in docs/.
docs: setup
	$(PY) -m utils.docs

clean-venv:
	rm -rf $(VENV)
