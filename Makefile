# Set-up, build, tests and the demo. `make test` and `make demo` work on a fresh clone.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: venv build test test-ops test-tbe-coverage test-asan test-portable test-install style style-check bench demo clean

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

# Every line of the Ascend kernel package (kernels/tbe/tbe/impl) runs in tests/tbe: the kernel
# program replayed on NumPy and the real entry files run through the TIK double.
TBE_IMPL := kernels/tbe/tbe/impl/*
test-tbe-coverage: build
	COVERAGE_FILE=build/.coverage-tbe $(PYTHON) -m coverage run --include='$(TBE_IMPL)' -m pytest -q tests/tbe
	COVERAGE_FILE=build/.coverage-tbe $(PYTHON) -m coverage report --show-missing --fail-under=100 --include='$(TBE_IMPL)'

# The op and TBE-plan tests against an AddressSanitizer build of the op library, made in its
# own folder (ops/_edvr_ops.so stays the normal build). Python and TensorFlow are not
# instrumented, so the ASan runtime is preloaded; leak checks are off because CPython keeps
# its interned objects to the end. --capture=sys leaves fd 2 alone, so an ASan report reaches
# the terminal even though ASan ends the process. tests/asan_session.py stops the session
# unless the instrumented library is the one loaded. The float64 central-difference tests are
# left out: their time is TF and Python, not the kernels (docs/sanitizers-and-property-tests.md).
# ASAN_PYTEST_ARGS passes more pytest options, e.g. ASAN_PYTEST_ARGS=--durations=20.
ASAN_DIR := build-asan
ASAN_LIBRARY := $(ASAN_DIR)/_edvr_ops.so

$(ASAN_LIBRARY): $(STAMP) CMakeLists.txt $(wildcard kernels/cpu/*) $(wildcard ops/cc/*)
	$(VENV)/bin/cmake -S . -B $(ASAN_DIR)/cmake -DPython3_EXECUTABLE=$(abspath $(PYTHON)) \
	    -DCMAKE_BUILD_TYPE=Release -DEDVR_SANITIZE=address -DEDVR_OPS_OUTPUT_DIR=$(abspath $(ASAN_DIR))
	$(VENV)/bin/cmake --build $(ASAN_DIR)/cmake --target edvr_ops --parallel 2

# The bfloat16 tests against a build for a generic x86-64 (SSE4.2, no AVX or AVX512_BF16), made
# in its own folder: the portable paths of the bfloat16 kernels (gemm_bf16.h's product, the
# conversions of bfloat16.h) that -march=native skips on a CPU with AVX512_BF16.
PORTABLE_DIR := build/portable
PORTABLE_LIBRARY := $(PORTABLE_DIR)/_edvr_ops.so

$(PORTABLE_LIBRARY): $(STAMP) CMakeLists.txt $(wildcard kernels/cpu/*) $(wildcard ops/cc/*)
	$(VENV)/bin/cmake -S . -B $(PORTABLE_DIR)/cmake -DPython3_EXECUTABLE=$(abspath $(PYTHON)) \
	    -DCMAKE_BUILD_TYPE=Release -DEDVR_ARCH_FLAGS=-march=x86-64-v2 \
	    -DEDVR_OPS_OUTPUT_DIR=$(abspath $(PORTABLE_DIR))
	$(VENV)/bin/cmake --build $(PORTABLE_DIR)/cmake --target edvr_ops --parallel 2

test-portable: $(PORTABLE_LIBRARY)
	EDVR_OPS_LIBRARY=$(abspath $(PORTABLE_LIBRARY)) $(PYTHON) -m pytest -q tests/ops/test_bfloat16.py

test-asan: $(ASAN_LIBRARY)
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0 TF_CPP_MIN_LOG_LEVEL=2 EDVR_OPS_LIBRARY=$(abspath $(ASAN_LIBRARY)) EDVR_OPS_SANITIZER=address \
	    $(PYTHON) -m pytest -q --capture=sys -p tests.asan_session -k "not numerical" $(ASAN_PYTEST_ARGS) tests/ops tests/tbe

# pip install of a copy of this clone into a fresh venv; the console scripts and the
# imports, from another directory (scripts/check_installed_package.sh).
test-install:
	scripts/check_installed_package.sh

# The style contract: ruff (format and lint, pyproject.toml) over the Python, clang-format
# (.clang-format) over the C++ of kernels/ and ops/cc. style-check changes nothing and fails on
# any difference (CI runs it); style applies the fixes and the formatting.
CXX_SOURCES = $(sort $(shell find kernels ops/cc -name '*.cc' -o -name '*.h'))

style-check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_SOURCES)

# Fixes first (they can leave lines to reformat); the last step lists what needs a hand.
style: $(STAMP)
	$(VENV)/bin/ruff check --fix --exit-zero --quiet .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)
	$(VENV)/bin/ruff check .

bench: build
	$(PYTHON) -m pytest -q bench

# Synthetic data, EDVR-tiny trained 1000 steps (about 9 minutes on 2 cores), the validation
# table against bicubic, and runs/demo/comparison.png.
demo: build
	$(PYTHON) -m edvr.data.synthetic --output data/synthetic
	rm -rf runs/demo
	$(PYTHON) -m edvr.train --config configs/edvr_tiny.yaml --data_dir data/synthetic --output runs/demo
	$(PYTHON) -m edvr.evaluate --config configs/edvr_tiny.yaml --checkpoint runs/demo \
	    --data_dir data/synthetic --split val --json runs/demo/val.json --comparison runs/demo/comparison.png

clean:
	rm -rf build $(ASAN_DIR) ops/_edvr_ops.so edvr_kernels.*.so
