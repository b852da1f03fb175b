# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501
SNORKEL := bench/.snorkel/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned exactly: this resolves to the local CPU build, a range would pull CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Snorkel is the baseline of bench/ws_bench.py and the reference of a statistics parity test: it goes
# beside the venv, never into it (--no-deps, so pip cannot replace the pinned torch).
$(SNORKEL): bench/requirements-snorkel.txt $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target bench/.snorkel -r bench/requirements-snorkel.txt
	touch $(SNORKEL)

run: install
	$(VENV)/bin/loupe run --port $(PORT)

test: install $(SNORKEL)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	for script in bench/*_bench.py; do $(PY) $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
