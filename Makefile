# The two commands a newcomer runs: `make demo` and `make test`.
# Each sets itself up on a fresh machine: virtual environment, Python packages, the Rust example
# target, and system packages (bubblewrap) when they are missing and we run as root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := .make
PLONKY3 := examples/plonky3

.PHONY: demo test setup venv rust system lint clean

demo: setup
	$(VENV)/bin/poi demo

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

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(STAMP) $(PLONKY3)/target
