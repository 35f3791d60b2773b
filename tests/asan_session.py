"""pytest plugin of `make test-asan`: stops the session before any test unless the op
library that the native backend loaded is the AddressSanitizer build and the ASan runtime
is in the process, so the sanitizer run cannot pass by testing the normal build.

Loaded with `-p tests.asan_session` when EDVR_OPS_SANITIZER=address.
"""

import os

import pytest


def asan_problems(library_path, maps_text):
    """What keeps this process from running `library_path` under ASan, as a list of
    sentences (empty when all is well). maps_text: the text of /proc/self/maps."""
    problems = []
    real_path = os.path.realpath(library_path)
    with open(real_path, "rb") as library:
        if b"__asan_init" not in library.read():
            problems.append(f"{real_path} is not built with -fsanitize=address (no __asan_init)")
    if real_path not in maps_text:
        problems.append(f"{real_path} is not mapped into the test process")
    if "libasan" not in maps_text:
        problems.append("the ASan runtime (libasan) is not loaded; preload it with LD_PRELOAD")
    return problems


def pytest_sessionstart(session):
    if os.environ.get("EDVR_OPS_SANITIZER") != "address":
        pytest.exit(
            "tests.asan_session needs EDVR_OPS_SANITIZER=address (run `make test-asan`)",
            returncode=3,
        )
    from ops import _native

    expected = os.environ.get("EDVR_OPS_LIBRARY", "")
    if not expected or os.path.realpath(_native.LIBRARY_PATH) != os.path.realpath(expected):
        pytest.exit(
            f"the native backend loads {_native.LIBRARY_PATH}, not the ASan build "
            f"EDVR_OPS_LIBRARY={expected!r}",
            returncode=3,
        )
    _native.load()
    with open("/proc/self/maps") as maps:
        problems = asan_problems(_native.LIBRARY_PATH, maps.read())
    if problems:
        pytest.exit("ASan session: " + "; ".join(problems), returncode=3)
    print(f"ASan session: {os.path.realpath(_native.LIBRARY_PATH)} (instrumented) is loaded")
