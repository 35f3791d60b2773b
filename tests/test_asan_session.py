"""The check that `make test-asan` runs before its tests refuses a normal build and a
process without the ASan runtime (tests/asan_session.py)."""

from tests.asan_session import asan_problems

ASAN_MAPS = "7f00-7f10 r-xp 0 08:01 1 /usr/lib/gcc/x86_64-linux-gnu/12/libasan.so.8.0.0\n"


def test_normal_build_is_refused(tmp_path):
    library = tmp_path / "_edvr_ops.so"
    library.write_bytes(b"\x7fELF ... edvr_deformable_offsets ...")
    maps = ASAN_MAPS + f"7f20-7f30 r-xp 0 08:01 2 {library}\n"
    assert asan_problems(str(library), maps) == [
        f"{library} is not built with -fsanitize=address (no __asan_init)"
    ]


def test_missing_runtime_and_unloaded_library_are_refused(tmp_path):
    library = tmp_path / "_edvr_ops.so"
    library.write_bytes(b"\x7fELF ... __asan_init ...")
    problems = asan_problems(str(library), "7f00-7f10 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    assert problems == [
        f"{library} is not mapped into the test process",
        "the ASan runtime (libasan) is not loaded; preload it with LD_PRELOAD",
    ]


def test_instrumented_library_in_asan_process_passes(tmp_path):
    library = tmp_path / "_edvr_ops.so"
    library.write_bytes(b"\x7fELF ... __asan_init ...")
    assert asan_problems(str(library), ASAN_MAPS + f"7f20-7f30 r-xp 0 08:01 2 {library}\n") == []
