"""SIGTERM and SIGINT during `python -m edvr.train`: a checkpoint at the current step, exit 0,
and a resume bit-equal to an uninterrupted run; a second signal exits at once, mid-save,
leaving the previous checkpoint and the state file intact (issue 16)."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.train.tiny_runs import run_train, tiny_config, train_argv, write_config
from edvr.checkpoint import newest_intact_checkpoint, read_values, verify_checkpoint
from edvr.training.stop_signals import StopSignals

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_training(argv, driver=None):
    """``python -m edvr.train ARGV`` (or ``python -c DRIVER ARGV``), output merged, line by line."""
    command = [sys.executable] + (['-c', driver] if driver else ['-m', 'edvr.train']) + argv
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED='1')
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )


def wait_for_checkpoint(process, run, step, timeout=300):
    """Waits until the state file of ``run`` lists model.ckpt-STEP (the run is mid-way)."""
    state, name = run / 'checkpoint', f'model.ckpt-{step}"'
    deadline = time.time() + timeout
    while not (state.is_file() and name in state.read_text()):
        if process.poll() is not None or time.time() > deadline:
            pytest.fail(
                f'the run ended (exit {process.poll()}) or timed out before saving '
                f'model.ckpt-{step}:\n{finish(process)}'
            )
        time.sleep(0.02)


def finish(process, timeout=300):
    return process.communicate(timeout=timeout)[0]


def test_sigterm_and_sigint_save_the_step_and_resume_exactly(tiny_data, tmp_path):
    # max_steps out of reach: the signal ends these runs.
    config = write_config(
        tmp_path / 'tiny.yaml', tiny_config(max_steps=10**6, scheduler_periods=[10**6])
    )
    stopped, processes = {}, {}
    for sig in (signal.SIGTERM, signal.SIGINT):  # both at once: their start-up overlaps
        processes[sig] = start_training(train_argv(config, tiny_data, tmp_path / sig.name))
    for sig, process in processes.items():
        wait_for_checkpoint(process, tmp_path / sig.name, 2)
        process.send_signal(sig)
    for sig, process in processes.items():
        run = tmp_path / sig.name
        out = finish(process)
        assert process.returncode == 0, out
        match = re.search(
            rf'stopped by {sig.name} at step (\d+); to continue: (.*)$', out, re.MULTILINE
        )
        assert match, out
        step = int(match.group(1))
        assert f'--output {run} --resume' in match.group(2)
        assert f'{sig.name}: stopping after this step and saving a checkpoint' in out
        assert 'Traceback' not in out
        assert newest_intact_checkpoint(str(run), warn=pytest.fail) == str(
            run / f'model.ckpt-{step}'
        )
        stopped[sig] = (run, step)

    total = max(step for _, step in stopped.values()) + 2
    run_train(config, tiny_data, tmp_path / 'straight', '--max_steps', str(total))
    straight = read_values(tmp_path / 'straight' / f'model.ckpt-{total}')
    assert any('adam' in name for name in straight)  # the optimiser slots are compared too
    for sig, (run, step) in stopped.items():
        messages = []
        assert (
            run_train(
                config, tiny_data, run, '--resume', '--max_steps', str(total), log=messages.append
            )[0]
            == total
        )
        assert any(
            m.startswith(f'resumed from {run}/model.ckpt-{step} at step {step}') for m in messages
        )
        resumed = read_values(run / f'model.ckpt-{total}')
        assert resumed.keys() == straight.keys()
        for name in straight:
            np.testing.assert_array_equal(
                straight[name], resumed[name], err_msg=f'{sig.name}: {name}'
            )


# Runs edvr.train; when the step-4 checkpoint's files are written and only the state file is
# left to write, the process sends itself SIGTERM twice and waits: the second must end it.
SECOND_SIGNAL_MID_SAVE = '''
import os, signal, sys, time
import tensorflow as tf
from edvr import train
update_checkpoint_state = tf.compat.v1.train.update_checkpoint_state
def interrupted_update(save_dir, model_checkpoint_path, *args, **kwargs):
    if model_checkpoint_path.endswith('-4'):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    return update_checkpoint_state(save_dir, model_checkpoint_path, *args, **kwargs)
tf.compat.v1.train.update_checkpoint_state = interrupted_update
sys.exit(train.main(sys.argv[1:]))
'''


def test_second_signal_exits_at_once_mid_save_and_keeps_the_previous_checkpoint(
    tiny_data, tmp_path
):
    config = write_config(
        tmp_path / 'tiny.yaml', tiny_config(max_steps=10**6, scheduler_periods=[10**6])
    )
    run = tmp_path / 'run'
    state_file = run / 'checkpoint'
    process = start_training(train_argv(config, tiny_data, run), driver=SECOND_SIGNAL_MID_SAVE)
    wait_for_checkpoint(process, run, 2)
    state_after_step_2 = state_file.read_text()
    out = finish(process, timeout=50)  # well before the driver's 60 s sleep ends
    assert process.returncode == 128 + signal.SIGTERM, out
    assert 'SIGTERM again: exiting at once' in out
    assert state_file.read_text() == state_after_step_2
    assert newest_intact_checkpoint(str(run), warn=pytest.fail) == str(run / 'model.ckpt-2')
    verify_checkpoint(str(run / 'model.ckpt-2'))
    assert not [f for f in os.listdir(run) if 'tempstate' in f or f.startswith('checkpoint.tmp')]


def test_first_signal_only_requests_a_stop_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    messages = []
    with StopSignals(messages.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested.wait(timeout=10)  # set by the watcher thread, not the main one
        assert stop.name == 'SIGTERM'
    assert messages == [
        'SIGTERM: stopping after this step and saving a checkpoint; send it '
        'again to exit at once without saving'
    ]
    assert signal.getsignal(signal.SIGTERM) is before
