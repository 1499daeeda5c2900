# The two commands a newcomer runs: `make demo` and `make test`.
# Each sets itself up on a fresh machine: virtual environment, Python packages, the Rust example
# target, and system packages (bubblewrap) when they are missing and we run as root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := .make
PLONKY3 := examples/plonky3

DEVNET_ARGS ?=

.PHONY: demo test setup venv rust system sandbox lint clean

# A whole network of real node processes on 127.0.0.1 (node/devnet/): proposers, verifiers with
# stake, a Byzantine verifier and an adversary; live progress, then the summary. It stays up
# for browsing until Ctrl-C; `make demo DEVNET_ARGS=--exit-when-done` stops after the summary.
# Needs only bubblewrap of the system packages (the browser `make test` uses is not needed).
demo: venv rust sandbox
	$(VENV)/bin/poi devnet $(DEVNET_ARGS)

test: setup
	$(VENV)/bin/ruff check .
	cd $(PLONKY3) && cargo test --offline --quiet
	$(PY) -m pytest -q

setup: venv rust system

venv: $(STAMP)/venv

$(STAMP)/venv: pyproject.toml
	@mkdir -p $(STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

rust:
	@if [ -f $(PLONKY3)/Cargo.toml ]; then \
		cd $(PLONKY3) && cargo build --release --offline --quiet; \
	fi

system:
	@./.ci/ensure-system-packages

sandbox:
	@./.ci/ensure-system-packages bubblewrap

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(STAMP) $(PLONKY3)/target devnet
