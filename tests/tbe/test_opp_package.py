"""The generated files of the custom operator package: npu_supported_ops.json (the TF adapter's op
filter) checked against the op proto, and the CMake branch that writes it, run with a stand-in
toolkit (empty libraries, no compiler work) so it runs without CANN."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.tbe.test_tbe_consistency import INI, PROTO, TBE, parse_proto

GENERATOR = os.path.join(TBE, "cmake", "gen_npu_supported_ops.py")


def _generate(tmp_path, *inis):
    out = tmp_path / "npu_supported_ops.json"
    result = subprocess.run(
        [sys.executable, GENERATOR, str(out)] + [str(i) for i in inis],
        capture_output=True,
        text=True,
    )
    return result, (json.loads(out.read_text()) if result.returncode == 0 else None)


def test_names_every_proto_op_and_nothing_else(tmp_path):
    result, supported = _generate(tmp_path, INI)
    assert result.returncode == 0, result.stderr
    proto_ops = parse_proto(PROTO)
    assert len(proto_ops) == 4
    assert sorted(supported) == sorted(proto_ops)
    for op, entry in supported.items():
        # npu_ops_identifier.cc: the entry must be an object; isGray and isHeavy are read only when
        # they are JSON booleans, and a gray op stays on the host in mixed mode.
        assert entry == {"isGray": False, "isHeavy": False}, op
        assert all(type(v) is bool for v in entry.values()), op


def test_heavy_flag_and_bad_input(tmp_path):
    ini = tmp_path / "ops.ini"
    ini.write_text(
        "[HeavyOp]\nheavyOp.flag=true\nopFile.value=heavy\n[LightOp]\nopFile.value=light\n"
    )
    result, supported = _generate(tmp_path, ini)
    assert result.returncode == 0, result.stderr
    assert supported == {
        "HeavyOp": {"isGray": False, "isHeavy": True},
        "LightOp": {"isGray": False, "isHeavy": False},
    }

    ini.write_text("[HeavyOp]\nheavyOp.flag=yes\n")
    result, _ = _generate(tmp_path, ini)
    assert result.returncode != 0
    assert "HeavyOp: heavyOp.flag: expected true or false, got 'yes'" in result.stderr

    result, _ = _generate(tmp_path, tmp_path / "missing.ini")
    assert result.returncode != 0 and "missing.ini" in result.stderr


def _fake_toolkit(root):
    """The directories and library names the CMake branch looks for; nothing is linked."""
    for sub in ("include", "lib64"):
        (root / sub).mkdir(parents=True)
    for lib in ("libgraph.so", "libregister.so"):
        (root / "lib64" / lib).write_bytes(b"")
    return root


def test_cmake_writes_the_package_files(tmp_path):
    cmake = shutil.which("cmake") or os.path.join(os.path.dirname(sys.executable), "cmake")
    if not os.path.exists(cmake):
        pytest.skip("cmake not installed")
    toolkit = _fake_toolkit(tmp_path / "cann")
    env = dict(os.environ, ASCEND_HOME_PATH=str(toolkit), ASCEND_OPP_PATH=str(toolkit / "opp"))
    build = tmp_path / "build"
    configure = subprocess.run(
        [cmake, "-S", TBE, "-B", str(build), "-DPython3_EXECUTABLE=" + sys.executable],
        env=env,
        capture_output=True,
        text=True,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    assert "EDVR TBE ops: CANN toolkit at" in configure.stdout
    made = subprocess.run(
        [cmake, "--build", str(build), "--target", "edvr_tbe_op_files"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr

    package = build / "packages" / "vendors" / "edvr"
    supported = json.loads(
        (package / "framework" / "tensorflow" / "npu_supported_ops.json").read_text()
    )
    assert sorted(supported) == sorted(parse_proto(PROTO))
    ops_info = json.loads(
        (
            package
            / "op_impl"
            / "ai_core"
            / "tbe"
            / "config"
            / "ascend910"
            / "aic-ascend910-ops-info.json"
        ).read_text()
    )
    assert sorted(ops_info) == sorted(supported)
    impl = package / "op_impl" / "ai_core" / "tbe" / "edvr_impl"
    assert (impl / "edvr_deformable_offsets.py").is_file()
