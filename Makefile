# Set-up, build, tests and the demo. `make test` and `make demo` work on a fresh clone.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: venv build test test-ops test-install bench demo clean

venv: $(STAMP)

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# One CMake build makes ops/_edvr_ops.so and the edvr_kernels module (kernels/python).
ops/_edvr_ops.so: $(STAMP) CMakeLists.txt $(wildcard kernels/cpu/*) $(wildcard ops/cc/*) \
    $(wildcard kernels/python/*)
	$(PYTHON) setup.py build_ext --inplace
	@touch $@  # CMake leaves it alone when only edvr_kernels changed

build: ops/_edvr_ops.so

test: build
	EDVR_OPS_BACKEND=auto $(PYTHON) -m pytest -q tests

test-ops: build
	$(PYTHON) -m pytest -q tests/ops

# pip install of a copy of this clone into a fresh venv; the console scripts and the
# imports, from another directory (scripts/check_installed_package.sh).
test-install:
	scripts/check_installed_package.sh

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
	rm -rf build ops/_edvr_ops.so edvr_kernels.*.so
