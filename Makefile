# stepless — the two commands a new user needs: `make dev` (a local CA) and `make test` (every test).
PYTHON ?= python3
JOBS ?= 2  # pytest-xdist workers; a test file runs whole in one worker (--dist loadfile)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench build step clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)  ## run a local CA on https://localhost:8443 (Ctrl-C stops it)
	$(BIN)/stepless dev $(DEV_ARGS)

step:  ## build the real step CLI (0.15) for the interop tests
	bash tools/build-step.sh

test: $(STAMP)  ## every test: unit, integration, infrastructure, end to end (with the real step CLI when built)
	-bash tools/build-step.sh >/dev/null 2>&1 || echo "note: the step CLI could not be built; interop tests will skip"
	PATH="$(abspath $(BIN)):$$PATH:$${XDG_CACHE_HOME:-$$HOME/.cache}/stepless-peers/bin" $(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench

build:  ## sam build (layer built for the template's architecture and runtime)
	sam build

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
