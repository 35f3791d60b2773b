"""scripts/run_8p_train.sh starts 8 ranks with the modelzoo environment (a fake `python` records it)."""

import os
import signal
import stat
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "run_8p_train.sh")

FAKE_PYTHON = """#!/bin/sh
[ "$1" = "-c" ] && exit 0   # the npu_bridge probe
echo "RANK_ID=$RANK_ID DEVICE_ID=$DEVICE_ID RANK_SIZE=$RANK_SIZE TABLE=$RANK_TABLE_FILE ARGS=$*"
[ "$RANK_ID" != "${FAIL_RANK:-none}" ]
"""


def _run(tmp_path, fail_rank=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    table = tmp_path / "table.json"
    table.write_text("{}")
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    if fail_rank is not None:
        env["FAIL_RANK"] = str(fail_rank)
    logs = tmp_path / "logs"
    result = subprocess.run(
        ["bash", SCRIPT, str(table), str(logs), "--config", "configs/edvr_m.yaml"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, logs, table


def test_starts_eight_ranks_with_modelzoo_environment(tmp_path):
    result, logs, table = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    for rank in range(8):
        line = (logs / ("rank_%d.log" % rank)).read_text().strip()
        assert line == (
            "RANK_ID=%d DEVICE_ID=%d RANK_SIZE=8 TABLE=%s ARGS=-m edvr.train --device npu "
            "--no_progress --config configs/edvr_m.yaml" % (rank, rank, table)
        )


def test_reports_a_failed_rank(tmp_path):
    result, _, _ = _run(tmp_path, fail_rank=5)
    assert result.returncode == 1
    assert "rank 5 failed" in result.stderr


def test_usage_without_arguments():
    result = subprocess.run(["bash", SCRIPT], capture_output=True, text=True)
    assert (
        result.returncode == 2
        and "Usage: scripts/run_8p_train.sh RANK_TABLE.json LOG_DIR" in result.stderr
    )


# A rank that runs until SIGINT, then writes that it got it (the probe `python -c` still passes).
FAKE_PYTHON_UNTIL_INT = """#!/bin/sh
[ "$1" = "-c" ] && exit 0
trap 'echo "rank $RANK_ID got INT"; kill $sleeper; exit 0' INT
sleep 60 &
sleeper=$!
echo "rank $RANK_ID running"
wait $sleeper
"""


def test_term_to_the_script_reaches_every_rank_once_and_it_waits_for_them(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON_UNTIL_INT)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    table = tmp_path / "table.json"
    table.write_text("{}")
    logs = tmp_path / "logs"
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    launcher = subprocess.Popen(
        ["bash", SCRIPT, str(table), str(logs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not all("running" in _read(logs / ("rank_%d.log" % rank)) for rank in range(8)):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.poll()
            time.sleep(0.05)
        launcher.send_signal(signal.SIGTERM)
        out, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, err
    assert "stopping workers" in err
    for rank in range(8):
        # once: each rank runs in its own process group, and only the script's trap signals it
        assert _read(logs / ("rank_%d.log" % rank)).count("got INT") == 1, rank


def _read(path):
    return path.read_text() if path.exists() else ""
