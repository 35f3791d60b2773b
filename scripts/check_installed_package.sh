#!/usr/bin/env bash
# The installed package, as a user gets it: a copy of this clone (its tracked and untracked,
# not ignored, files: no .venv, no built libraries) is installed with
# `pip install --no-build-isolation .` into a fresh venv, the copy is deleted, and from
# another directory: each console script's --help, `ops.backend() == "native"`, an import
# of every installed module, edvr_kernels, and a preset found by its README path.
# Usage: scripts/check_installed_package.sh   (`make test-install`; .ci/run calls it)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

mkdir "$WORK/src" "$WORK/elsewhere"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$WORK/src"

python3 -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip --quiet --disable-pip-version-check)
# Only what the build and the installed tools need, at requirements.txt's pins.
grep -iE '^(tensorflow-cpu|numpy|pyyaml|tqdm|pillow|setuptools|cmake|pybind11)==' \
  "$ROOT/requirements.txt" > "$WORK/pins.txt"
"${PIP[@]}" install -r "$WORK/pins.txt"
echo "check_installed_package: requirements installed ($((SECONDS - START)) s)"
(cd "$WORK/elsewhere" && "${PIP[@]}" install --no-build-isolation "$WORK/src")
rm -rf "$WORK/src"  # whatever runs now comes from the venv
echo "check_installed_package: package built and installed ($((SECONDS - START)) s)"

cd "$WORK/elsewhere"
export TF_CPP_MIN_LOG_LEVEL=2  # TF's start-up banners, six times over, hide the result
for tool in train infer evaluate convert freeze; do
  "$WORK/venv/bin/edvr-$tool" --help > /dev/null || { echo "edvr-$tool --help failed" >&2; exit 1; }
done
env -u EDVR_OPS_BACKEND "$WORK/venv/bin/python" - <<'PY'
import importlib
import pkgutil
import sys

import numpy as np

import edvr
import edvr_kernels
import ops
from edvr.config import load_config

assert ops.backend() == "native", ops.backend()
site = "/venv/lib/"
for package in (ops, edvr):
    assert site in package.__file__, f"{package.__name__} imported from {package.__file__}"
failed = []
modules = [m.name for package in (edvr, ops)
           for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
assert "ops._edvr_ops" in modules, "the op library is not installed"
for name in modules:
    if name == "ops._edvr_ops":
        continue  # a TensorFlow plugin (loaded above by ops.backend()), not a Python module
    try:
        importlib.import_module(name)
    except Exception as error:  # report every module that fails, not just the first
        failed.append(f"{name}: {type(error).__name__}: {error}")
assert not failed, "modules that do not import:\n" + "\n".join(failed)
for name in ("edvr.model", "edvr.data", "edvr.training"):
    assert name in sys.modules, name
x = np.arange(12.0).reshape(1, 3, 4, 1)
assert edvr_kernels.bilinear_sample(x, np.array([[[1.0, 2.0]]]))[0, 0, 0] == 9.0
assert load_config("configs/edvr_tiny.yaml")["model"]["num_feat"] > 0
print("check_installed_package: imports, native backend, edvr_kernels and presets OK")
PY
echo "check_installed_package: passed in $((SECONDS - START)) s"
