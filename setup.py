"""Builds the native op library with CMake: `python setup.py build_ext --inplace`.

CMakeLists.txt is the one build description; this file only drives it with the
Python that runs it (so TensorFlow's flags match the installed TensorFlow) and
leaves ops/_edvr_ops.so where the `ops` package loads it.
"""
import os
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.join(ROOT, "build", "cmake")
        os.makedirs(build_dir, exist_ok=True)
        cmake = os.path.join(os.path.dirname(sys.executable), "cmake")  # pinned in requirements.txt
        cmake = cmake if os.path.exists(cmake) else "cmake"
        configure = [cmake, "-S", ROOT, "-B", build_dir, f"-DPython3_EXECUTABLE={sys.executable}",
                     "-DCMAKE_BUILD_TYPE=Release"]
        if os.environ.get("EDVR_ARCH_FLAGS") is not None:
            configure.append(f"-DEDVR_ARCH_FLAGS={os.environ['EDVR_ARCH_FLAGS']}")
        subprocess.check_call(configure)
        subprocess.check_call([cmake, "--build", build_dir, "--parallel", str(os.cpu_count() or 1)])
        # CMake already wrote ops/_edvr_ops.so; a copy goes where setuptools packs extensions.
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.copy_file(os.path.join(ROOT, "ops", "_edvr_ops.so"), target)

    def copy_extensions_to_source(self):
        """--inplace: nothing to copy, CMake builds into ops/ (under the name `ops` loads)."""


setup(
    name="edvr-tf",
    version="0.1.0",
    description="EDVR video restoration in TensorFlow with native deformable-sampling ops",
    packages=["ops", "edvr"],
    ext_modules=[CMakeExtension("ops._edvr_ops")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.7",
)
