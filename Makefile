# The two commands the README promises:
#   make serve   set everything up, then run the WebUI + API with the shipped demo model
#   make test    set everything up, then run lint, the architecture contracts and the tests
PYTHON ?= python3
VENV ?= .venv
# torch 2.13.0: the CPU wheel where the machine offers one locally, PyPI's build elsewhere.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test lint setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

serve: setup
	$(BIN)/easel serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
