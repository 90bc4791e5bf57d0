# `make demo` and `make test` are all a fresh machine needs: each builds .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-dcase test bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m common demo

# The same on a synthetic DCASE 2023 Task 2 development set, with its official scores (demo_dcase2023/).
demo-dcase: $(STAMP)
	$(PY) -m common demo --dcase 2023

# Two pytest workers (CI's and this project's machines have 2 cores); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .cache Version*/model_pretrain_v* Version*/result_transfer_pretrain_v* report
