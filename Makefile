# The two commands the README promises:
#   make serve   set everything up, then run the WebUI + API with the shipped demo model
#   make test    set everything up, then run lint, the architecture contracts and the tests
PYTHON ?= python3
VENV ?= .venv
# torch + torchvision as a matching pair (PyPI's torchvision does not import beside a torch
# from another build); this machine's pip takes both from its local wheel folder.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test lint setup browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

serve: setup
	$(BIN)/easel serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Headless Chromium for the WebUI browser tests, from Debian's packages (Playwright
# drives it; `playwright install` cannot download browsers here). Installed only when
# missing and only as root; CJK and emoji fonts make the screenshots readable.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver fonts-wqy-microhei fonts-noto-color-emoji; \
	  else echo "chromium missing: install it (apt-get install chromium) or the browser tests are skipped"; fi; }

test: lint browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)
