"""Builds the native op library and edvr_kernels with CMake, for `pip install
--no-build-isolation .` (pyproject.toml) and for a clone (`python setup.py build_ext --inplace`,
which `make build` runs).

CMakeLists.txt is the one build description; this file only drives it with the Python that
runs it (so TensorFlow's flags and pybind11 match that Python's) and tells it where the two
libraries go: into the source tree with --inplace (ops/_edvr_ops.so, where `ops` loads it, and
edvr_kernels beside the packages), else into setuptools' build folder, from which they are
installed. Package metadata and console scripts are in pyproject.toml.
"""

import hashlib
import os
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
# The op library is a TensorFlow plugin, not a Python module: `ops` loads it by this name.
OP_LIBRARY = os.path.join("ops", "_edvr_ops.so")


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def run(self):
        # setuptools clears self.inplace while it builds (it would copy the results to the
        # source tree afterwards); CMake writes there directly instead.
        self.into_source = bool(self.inplace)
        super().run()

    def library_path(self, ext_name, folder):
        if ext_name == "ops._edvr_ops":
            return os.path.join(folder, OP_LIBRARY)
        return os.path.join(folder, self.get_ext_filename(ext_name))

    def get_ext_fullpath(self, ext_name):
        return self.library_path(ext_name, self.build_lib)

    def build_extensions(self):
        """One CMake build makes both extensions, in the folder their names map to."""
        output_dir = ROOT if self.into_source else os.path.abspath(self.build_lib)
        expected = [self.library_path(ext.name, output_dir) for ext in self.extensions]
        # One CMake folder per interpreter: its cache holds that Python's TF and pybind11.
        tag = hashlib.sha1(sys.executable.encode()).hexdigest()[:8]
        build_dir = os.path.join(ROOT, "build", f"cmake-{tag}")
        os.makedirs(build_dir, exist_ok=True)
        cmake = os.path.join(os.path.dirname(sys.executable), "cmake")  # pinned in requirements.txt
        cmake = cmake if os.path.exists(cmake) else "cmake"
        configure = [
            cmake,
            "-S",
            ROOT,
            "-B",
            build_dir,
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DEDVR_OPS_OUTPUT_DIR={os.path.join(output_dir, 'ops')}",
            f"-DEDVR_KERNELS_OUTPUT_DIR={output_dir}",
        ]
        if os.environ.get("EDVR_ARCH_FLAGS") is not None:
            configure.append(f"-DEDVR_ARCH_FLAGS={os.environ['EDVR_ARCH_FLAGS']}")
        subprocess.check_call(configure)
        subprocess.check_call([cmake, "--build", build_dir, "--parallel", str(os.cpu_count() or 1)])
        missing = [path for path in expected if not os.path.exists(path)]
        if missing:
            raise RuntimeError(
                f"CMake did not write {missing}: check EDVR_*_OUTPUT_DIR in CMakeLists.txt"
            )

    def copy_extensions_to_source(self):
        """--inplace: nothing to copy, CMake builds into the source tree."""


class BuildPyWithPresets(build_py):
    """Also installs the presets configs/*.yaml as edvr/configs/, where edvr.config finds
    them when `--config configs/edvr_tiny.yaml` does not exist (outside a clone)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "edvr", "configs")
        self.mkpath(target)
        for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
            if name.endswith(".yaml"):
                self.copy_file(os.path.join(ROOT, "configs", name), os.path.join(target, name))


setup(
    ext_modules=[CMakeExtension("ops._edvr_ops"), CMakeExtension("edvr_kernels")],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPyWithPresets},
)
