# Set-up, build, tests and the demo. `make test` and `make demo` work on a fresh clone.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: venv build test test-ops test-tbe-coverage bench demo clean

venv: $(STAMP)

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

ops/_edvr_ops.so: $(STAMP) CMakeLists.txt $(wildcard kernels/cpu/*) $(wildcard ops/cc/*)
	$(PYTHON) setup.py build_ext --inplace

build: ops/_edvr_ops.so

test: build
	EDVR_OPS_BACKEND=auto $(PYTHON) -m pytest -q tests

test-ops: build
	$(PYTHON) -m pytest -q tests/ops

# Every line of the Ascend kernel package (kernels/tbe/tbe/impl) runs in tests/tbe: the kernel
# program replayed on NumPy and the real entry files run through the TIK double.
TBE_IMPL := kernels/tbe/tbe/impl/*
test-tbe-coverage: build
	COVERAGE_FILE=build/.coverage-tbe $(PYTHON) -m coverage run --include='$(TBE_IMPL)' -m pytest -q tests/tbe
	COVERAGE_FILE=build/.coverage-tbe $(PYTHON) -m coverage report --show-missing --fail-under=100 --include='$(TBE_IMPL)'

bench: build
	$(PYTHON) -m pytest -q bench

# Synthetic data, EDVR-tiny trained for at most 8 minutes, the validation table
# against bicubic, and runs/demo/comparison.png.
demo: build
	$(PYTHON) -m edvr.data.synthetic --output data/synthetic
	rm -rf runs/demo
	$(PYTHON) -m edvr.train --config configs/edvr_tiny.yaml --data_dir data/synthetic --output runs/demo
	$(PYTHON) -m edvr.evaluate --config configs/edvr_tiny.yaml --checkpoint runs/demo \
	    --data_dir data/synthetic --split val --json runs/demo/val.json --comparison runs/demo/comparison.png

clean:
	rm -rf build ops/_edvr_ops.so
