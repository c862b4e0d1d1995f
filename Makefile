# The two commands of the README. Both create (or reuse) the local virtual environment .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint setup

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

## run the Gradio app on the embedded default model (no network, no GPU needed)
run: $(STAMP)
	$(PY) app.py $(ARGS)

## run the whole test suite (unit, integration, browser where Chromium exists)
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
