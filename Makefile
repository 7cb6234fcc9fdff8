# The README's two commands: `make demo` and `make test`. Each sets itself up on a fresh
# machine: a virtualenv in .venv with the pinned runtime and the dev dependencies.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench package system-deps netbox-deps checkov-deps twin clean

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[dev]'
	touch $(STAMP)

## demo: a PostgreSQL rotation carried into Kubernetes (ESO, Reloader) and a Jenkins token, on the twins
demo: $(STAMP)
	$(BIN)/python -m demo

## test: the whole suite (real PostgreSQL and MariaDB from Debian's packages, twins over HTTPS)
test: system-deps $(STAMP) node_modules/.bin/azurite netbox-deps checkov-deps
	$(BIN)/python -m pytest

## lint: ruff and mypy (the test suite runs them too)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: ratios of the rotator's work against baselines measured in the same run (also in bench/results.json)
bench: $(STAMP)
	$(BIN)/python -m bench.run --json bench/results.json

## package: dist/akv-rotator.zip, the zip Azure runs: the app and .python_packages for CPython 3.11 on Linux x86-64
package: $(STAMP)
	$(BIN)/python scripts/package.py dist/akv-rotator.zip

# Azurite (npm devDependency, pinned by package-lock.json) for the journal's Table tests.
# Installed when missing; after changing package.json run `npm install` yourself.
node_modules/.bin/azurite:
	npm install --no-audit --no-fund

system-deps:
	bash scripts/install-system-deps.sh

## netbox-deps: NetBox's own Python 3.12 virtualenv for its tests, once per machine (docs/netbox-for-tests.md)
netbox-deps: system-deps $(STAMP)
	bash scripts/install-netbox.sh

## checkov-deps: checkov in its own virtualenv (.venv-checkov): its dependencies conflict with the project's
checkov-deps:
	bash scripts/install-checkov.sh

## twin: run the Key Vault twin standalone on https://127.0.0.1:8443 for local development
twin: $(STAMP)
	$(BIN)/python -m twins.keyvault --port 8443 --cert-dir .demo/twin

clean:
	rm -rf $(VENV) .venv-checkov .demo dist .pytest_cache .mypy_cache .ruff_cache
