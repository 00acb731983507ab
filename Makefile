# Two commands do all set-up on a fresh machine:
#   make run    -> venv + install + the main job (`rise run`) on the embedded default
#   make test   -> venv + install + ruff + the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned: on these machines 2.13.0 is a CPU wheel on local disk, while an unpinned
# torch resolves to a multi-GB CUDA build. Override with `make TORCH=torch==2.11.0 ...`.
TORCH ?= torch==2.13.0
OUT ?= runs/default

.PHONY: setup run test clean
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/rise run --out $(OUT)

# Lint first (ruff: rules and line length in pyproject.toml), then the suite.
test: setup
	$(VENV)/bin/ruff check src tests bench
	OMP_NUM_THREADS=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
