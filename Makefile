# The two commands the README promises:
#   make serve   set everything up, then run the WebUI + API with the shipped demo model
#   make test    set everything up, then run lint, the architecture contracts and the tests
# Both install exactly the versions in requirements.lock; `make lock` rewrites it.
PYTHON ?= python3
VENV ?= .venv
LOCK := requirements.lock
BIN := $(VENV)/bin
# The torch + torchvision pair `make lock` pins (PyPI's torchvision only imports beside the
# torch build it was made for). Change both together, then `make lock`.
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
# Optional: a PyTorch wheel index for another CUDA build of the same pair, e.g.
# https://download.pytorch.org/whl/cu126 or .../whl/cpu; the lock's version still decides.
TORCH_INDEX_URL ?=
UV_SPEC ?= uv==0.13.9
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: serve test lint lock lock-check setup browser postgres mutation

# pip itself comes from the lock too, so a new pip release cannot change how the lock installs.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep -E '^pip==' $(LOCK) 2>/dev/null || echo pip)"

# Exactly the lock (pip resolves nothing newer: every package is pinned), then Easel itself
# without build isolation, so the locked setuptools builds it instead of the newest one.
$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	@if [ -n "$(TORCH_INDEX_URL)" ]; then \
	  $(BIN)/python -m pip install --quiet --index-url "$(TORCH_INDEX_URL)" \
	    $$(grep -E '^(torch|torchvision)==' $(LOCK) | cut -d' ' -f1); fi
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m core.cli.lock check
	touch $@

setup: $(VENV)/.installed

serve: setup
	$(BIN)/easel serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The venv matches the lock, the lock matches pyproject, `pip check` is clean.
lock-check: setup
	$(BIN)/python -m core.cli.lock check

# Re-resolve within pyproject's ranges (newest versions the index has) and rewrite the lock
# for every platform and Python >= 3.11 (uv's universal resolution writes markers). Then run
# `make test` and commit pyproject.toml and requirements.lock together.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(UV_SPEC)
	$(BIN)/python -m core.cli.lock inputs $(TORCH_PAIR) | \
	  $(BIN)/uv pip compile pyproject.toml - --extra test --universal --python-version 3.11 \
	    --custom-compile-command "make lock" --quiet -o $(LOCK)

# Headless Chromium for the WebUI browser tests, from Debian's packages (Playwright
# drives it; `playwright install` cannot download browsers here). Installed only when
# missing and only as root; CJK and emoji fonts make the screenshots readable.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver fonts-wqy-microhei fonts-noto-color-emoji; \
	  else echo "chromium missing: install it (apt-get install chromium) or the browser tests are skipped"; fi; }

# PostgreSQL server binaries for the PostgreSQL queue tests, from Debian's packages. The
# tests start their own throwaway cluster (initdb in a temp folder, as the postgres user,
# on a free port); nothing here starts a service. Installed only when missing, only as root.
POSTGRES_INITDB ?= /usr/lib/postgresql/*/bin/initdb
postgres:
	@ls $(POSTGRES_INITDB) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "*** PostgreSQL server missing ($(POSTGRES_INITDB)): install it (apt-get install postgresql)"; \
	    echo "*** or the PostgreSQL queue tests are SKIPPED ***"; fi; }

# With the server installed, a PostgreSQL test that cannot find it fails instead of skipping.
# Two pytest workers (pytest-xdist), a test file per worker at a time: most tests wait on a
# server, a subprocess or a browser with one core idle, and a file's module fixtures (its
# server, its models) are built once. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
test: lint lock-check browser postgres
	EASEL_REQUIRE_POSTGRES=$$(ls $(POSTGRES_INITDB) >/dev/null 2>&1 && echo 1 || echo 0) \
	  $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Mutation testing, not part of `make test` (minutes per module on 2 cores): mutmut changes
# the modules [tool.mutmut] in pyproject.toml names, one small edit at a time, and runs the
# fast tests listed there against each; `mutmut results` lists the edits no test noticed
# (`mutmut show NAME` shows one). A new survivor is a missing test or an equivalent edit.
mutation: setup
	rm -rf mutants
	# every mutant starts a pytest session: the tiny models are built once (tests/conftest.py)
	EASEL_TINY_MODEL_CACHE=$(CURDIR)/.easel/tiny-models $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results
