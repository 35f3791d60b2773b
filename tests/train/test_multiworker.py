"""Multi-worker edvr.train on TensorFlow's collective all-reduce, 2 and 3 workers on
127.0.0.1: identical variables, equal (to float rounding) to one process with the global
batch, a lost (killed, stopped or stuck) worker stopping the others with an error naming it,
an exact --resume, chief-only writes, a config copy never seen half-written."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.train.tiny_runs import tiny_config, train_argv, write_config
from bench.multiworker import LocalWorkers, free_ports
from edvr import cli
from edvr import train as train_module
from edvr.config import parse_config
from edvr.training import distributed
from edvr.checkpoint import read_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, 'scripts', 'run_multiworker.sh')
LR = 1e-3  # tiny_config's train.lr
# Tolerance of the 2-worker variables against one process on the global batch, as a share of
# the largest move Adam can make in the steps run (about lr per element and step). The two
# runs sum the batch's gradients in different orders (convolution backprops over 4 samples vs
# 2 + 2 then the all-reduce), float32 rounding apart; Adam divides every gradient element by
# its own running RMS, so where a gradient is a small sum of cancelling terms (the offset
# convs, which start at zero) its rounding error becomes a comparable share of that element's
# step: up to ~0.7% of lr measured. A wrong shard, a lost or doubled gradient moves elements
# by whole lr-sized steps (and the Adam moments by factors), far outside.
MOVE_TOLERANCE = 0.02
SLOT_TOLERANCE = 1e-2  # Adam moments: relative to each slot variable's largest magnitude


def compare_with_one_process(values, checkpoint, steps):
    """Largest differences of ``values`` (name -> array) from ``checkpoint``: (weights, as a
    share of steps * lr; slots, relative to the slot's largest magnitude). Asserts both are
    within tolerance and the steps equal."""
    reader = tf.train.load_checkpoint(checkpoint)
    names = set(reader.get_variable_to_shape_map())
    assert names == set(values), names ^ set(values)
    worst_move, worst_slot = (0.0, ''), (0.0, '')
    for name in sorted(names):
        expected = reader.get_tensor(name)
        got = values[name]
        if name == 'global_step' or not np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_array_equal(got, expected, err_msg=name)
            continue
        diff = float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0
        if '/adam_' in name or 'power' in name:
            share = diff / max(float(np.abs(expected).max()), 1e-30)
            worst_slot = max(worst_slot, (share, name))
        else:
            worst_move = max(worst_move, (diff / (steps * LR), name))
    assert worst_move[0] <= MOVE_TOLERANCE, worst_move
    assert worst_slot[0] <= SLOT_TOLERANCE, worst_slot
    return worst_move, worst_slot


def one_process_checkpoint(tiny_data, tmp_path, steps, **train):
    """Trains one process with batch 4 (the 2 workers' global batch) for ``steps`` steps."""
    config = write_config(
        tmp_path / 'single.yaml', tiny_config(**dict(train, batch_size=4, max_steps=steps))
    )
    output = str(tmp_path / 'single')
    # float32, as the workers compute (edvr.train keeps them in float32)
    assert train_module.main(train_argv(config, tiny_data, output, '--precision', 'fp32')) == 0
    return os.path.join(output, f'model.ckpt-{steps}')


def test_workers_hold_identical_variables_equal_to_one_process_on_the_global_batch(
    tiny_data, tmp_path
):
    steps = 3
    config = parse_config(tiny_config(batch_size=2, max_steps=steps))
    workers = LocalWorkers(config, tiny_data, count=2)
    try:
        workers.steps(steps)
        chief, other = workers.variables()
    finally:
        workers.close()
    assert int(chief['global_step']) == steps
    for name in chief:  # the same reduced gradients applied to the same broadcast variables
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    move, slot = compare_with_one_process(
        chief, one_process_checkpoint(tiny_data, tmp_path, steps), steps
    )
    print(
        f'2 workers x batch 2 vs 1 process x batch 4 after {steps} steps: largest weight '
        f'difference {move[0]:.2e} x (steps * lr) ({move[1]}), largest Adam moment '
        f'difference {slot[0]:.2e} relative ({slot[1]})'
    )


def launch(count, args, log_dir, **popen):
    env = dict(os.environ, PYTHON=sys.executable, LOG_DIR=str(log_dir), TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.Popen(
        ['bash', LAUNCHER, str(count)] + args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def worker_pids(launcher, count):
    """The workers' pids, as the launcher prints them."""
    pids = []
    for line in launcher.stdout:
        match = re.match(rf'worker {len(pids)}: pid (\d+),', line)
        if match:
            pids.append(int(match.group(1)))
            if len(pids) == count:
                return pids
    raise AssertionError(f'the launcher printed {len(pids)} of {count} worker pids')


def stop(launcher, pids):
    """Kills what is left of a launch (the workers run in their own process groups)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if launcher.poll() is None:
        launcher.kill()


def wait_for(path, launcher, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert launcher.poll() is None, f'the workers stopped before writing {path}'
        assert time.monotonic() < deadline, f'no {path} after {seconds} s'
        time.sleep(0.1)


@dataclass
class Launch:
    """Workers started by the launcher: its process, their pids, the run's arguments."""

    launcher: subprocess.Popen
    pids: list
    args: list  # the edvr.train arguments every worker got
    output: str  # the run folder
    logs: object  # pathlib.Path of LOG_DIR: worker_I.log

    def log(self, index):
        return (self.logs / f'worker_{index}.log').read_text()


def launch_until_checkpoint(count, tiny_data, tmp_path, timeout):
    """Starts ``count`` workers of a long EDVR-tiny run (batch 2 each, a checkpoint every
    step, ``--collective_timeout timeout``) through the launcher and waits for the chief's
    checkpoint of step 2. The caller stops them (``stop``)."""
    config = write_config(
        tmp_path / 'tiny.yaml',
        tiny_config(batch_size=2, max_steps=1000, scheduler_periods=[1000], checkpoint_every=1),
    )
    output = str(tmp_path / 'run')
    args = [
        '--config',
        config,
        '--data_dir',
        tiny_data,
        '--output',
        output,
        '--collective_timeout',
        str(timeout),
    ]
    logs = tmp_path / 'logs'
    launcher = launch(count, args, logs)
    pids = []
    try:
        pids = worker_pids(launcher, count)
        wait_for(os.path.join(output, 'model.ckpt-2.index'), launcher, 240)
    except BaseException:
        stop(launcher, pids)
        raise
    return Launch(launcher, pids, args, output, logs)


def test_lost_worker_stops_the_other_and_resume_continues_exactly(tiny_data, tmp_path):
    timeout = 10
    run = launch_until_checkpoint(2, tiny_data, tmp_path, timeout)
    launcher, pids, common, output, logs = run.launcher, run.pids, run.args, run.output, run.logs
    try:
        os.kill(pids[1], signal.SIGKILL)
        killed = time.monotonic()
        rest = launcher.communicate(timeout=timeout + 60)[0]
        stopped_after = time.monotonic() - killed
    finally:
        stop(launcher, pids)
    chief_log = (logs / 'worker_0.log').read_text()
    assert launcher.returncode == cli.EXIT_WORKER_LOST, rest + chief_log[-3000:]
    # The error comes within the collective timeout (here at once: the peer's connection is
    # reset); the rest is the process exiting.
    assert stopped_after < timeout + 10, stopped_after
    assert re.search(
        r'error: lost worker 1 \(127\.0\.0\.1:\d+\): worker 0 \(127\.0\.0\.1:\d+\)', chief_log
    ), chief_log[-3000:]
    stopped = int(tf.train.latest_checkpoint(output).rsplit('-', 1)[1])
    assert stopped >= 2

    # A time limit reached during the first resumed step: every worker votes to stop in the
    # second, so all stop after it together (each on its own clock would stop after one).
    resumed = launch(2, common + ['--resume', '--max_minutes', '1e-6'], logs)
    pids = []
    try:
        pids = worker_pids(resumed, 2)
        out = resumed.communicate(timeout=300)[0]
    finally:
        stop(resumed, pids)
    worker_logs = [(logs / f'worker_{i}.log').read_text() for i in (0, 1)]
    assert resumed.returncode == 0, out + worker_logs[0][-3000:] + worker_logs[1][-3000:]
    for log in worker_logs:
        assert f'model.ckpt-{stopped} at step {stopped}' in log
        assert f'stopped at step {stopped + 2} ' in log

    # Only the chief wrote: the run folder holds exactly its config, checkpoints and one
    # event file per run (the logs of both workers are outside it, in LOG_DIR).
    kept = range(max(1, stopped + 2 - 4), stopped + 3)  # tiny_config keeps 5
    expected = {'checkpoint', 'config.yaml', 'logs'} | {
        f'model.ckpt-{s}.{ext}' for s in kept for ext in ('index', 'data-00000-of-00001')
    }
    assert set(os.listdir(output)) == expected
    assert len(os.listdir(os.path.join(output, 'logs'))) == 2

    values = read_values(os.path.join(output, f'model.ckpt-{stopped + 2}'))
    single = one_process_checkpoint(
        tiny_data, tmp_path, stopped + 2, scheduler_periods=[1000], checkpoint_every=1000
    )
    move, slot = compare_with_one_process(values, single, stopped + 2)
    print(
        f'worker 1 killed after step {stopped}: the launcher returned {stopped_after:.1f} s '
        f'later; resumed to {stopped + 2}: largest weight difference '
        f'{move[0]:.2e} x (steps * lr), Adam moments {slot[0]:.2e} relative'
    )


def running(pid):
    """Whether process ``pid`` runs (exists and is no zombie awaiting its parent's wait)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_a_stopped_worker_is_named_by_the_others(tiny_data, tmp_path):
    """3 workers; worker 2 is stopped (SIGSTOP: alive, its port open, but it answers nothing).
    Workers 0 and 1 time out in the all-reduce, find it silent, and exit with status 4 and an
    error naming it, within the timeout (plus the survey and the exit)."""
    timeout = 10
    run = launch_until_checkpoint(3, tiny_data, tmp_path, timeout)
    try:
        os.kill(run.pids[2], signal.SIGSTOP)
        stopped = time.monotonic()
        while (
            any(running(pid) for pid in run.pids[:2]) and time.monotonic() - stopped < timeout + 60
        ):
            time.sleep(0.2)
        exited_after = time.monotonic() - stopped
    finally:
        os.kill(run.pids[2], signal.SIGKILL)  # a stopped process takes SIGKILL at once
        try:  # the launcher reports every worker's exit status, then returns
            out = run.launcher.communicate(timeout=60)[0]
        finally:
            stop(run.launcher, run.pids)
    logs = [run.log(i) for i in range(3)]
    # each worker's address, as its log names it at the start
    addresses = [
        re.search(rf'multi-worker: worker {i} \((127\.0\.0\.1:\d+)\) of 3', log).group(1)
        for i, log in enumerate(logs)
    ]
    for index in (0, 1):
        assert f'worker {index} failed (exit status {cli.EXIT_WORKER_LOST})' in out, (
            out + logs[index][-3000:]
        )
        assert re.search(
            rf'error: lost worker 2 \({addresses[2]}\): worker {index} '
            rf'\({addresses[index]}\) waited for it in step \d+ in a collective '
            rf'all-reduce \(timeout {timeout} s, distributed.collective_timeout\): '
            rf'worker 2 \({addresses[2]}\) is unreachable \(stopped or hung\)',
            logs[index],
        ), logs[index][-3000:]
    # The timeout, the survey (PROBE_SECONDS), the chief's checkpoint, the exit.
    assert exited_after < timeout + 10, exited_after
    print(
        f'worker 2 stopped: workers 0 and 1 were gone {exited_after:.1f} s later (timeout '
        f'{timeout} s)'
    )


def test_an_interrupted_config_copy_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    """The chief writes config.yaml while other workers may read it (on --resume): it writes
    a temporary file and renames it over the old one, so a reader sees the old config or the
    new one, never a part. Here the write is interrupted half-way: the old one stays whole."""
    output = str(tmp_path / 'run')
    train_module.prepare_output(output, parse_config(tiny_config(max_steps=3)), resume=False)
    saved = os.path.join(output, 'config.yaml')
    with open(saved) as f:
        before = f.read()
    dump = yaml.safe_dump

    def half_then_interrupt(data, stream, **options):
        text = dump(data, **options)
        stream.write(text[: len(text) // 2])
        stream.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(yaml, 'safe_dump', half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_module.prepare_output(output, parse_config(tiny_config(max_steps=9)), resume=False)
    with open(saved) as f:
        assert f.read() == before
    monkeypatch.undo()
    train_module.prepare_output(output, parse_config(tiny_config(max_steps=9)), resume=False)
    with open(saved) as f:
        assert yaml.safe_load(f)['train']['max_steps'] == 9


def tf_config(workers, index):
    import json

    return {
        distributed.ENV: json.dumps(
            {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
        )
    }


def test_cluster_comes_from_tf_config():
    cluster = distributed.WorkerCluster.from_env(tf_config(['a:1', 'b:2', 'c:3'], 2))
    assert (cluster.size, cluster.index, cluster.address, cluster.chief) == (3, 2, 'c:3', False)
    assert cluster.device == '/job:worker/replica:0/task:2'
    assert distributed.WorkerCluster.from_env({}) is None


@pytest.mark.parametrize(
    'value, message',
    [
        ('{not json', r'TF_CONFIG: expected JSON, got'),
        (
            '{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", '
            '"index": 0}}',
            r'"worker" tasks only .*got jobs \[\'chief\', \'worker\'\]',
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            r'task must be .* 0 <= i < 1, got \{\'type\': \'worker\', \'index\': 1\}',
        ),
        (
            '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
            r'"host:port", got \'a\'',
        ),
    ],
)
def test_bad_tf_config_is_refused_saying_what_it_holds(value, message):
    with pytest.raises(ValueError, match=message):
        distributed.WorkerCluster.from_env({distributed.ENV: value})


def test_lost_worker_error_names_the_unreachable_worker():
    closed = free_ports(2)  # nothing listens on them
    cluster = distributed.WorkerCluster((f'127.0.0.1:{closed[0]}', f'127.0.0.1:{closed[1]}'), 0)
    error = tf.errors.DeadlineExceededError(
        None,
        None,
        'Graph execution error:\n\nFrom '
        '/job:worker/replica:0/task:0:\nCollective has '
        'timed out during execution.',
    )
    lost = distributed.lost_worker_error(cluster, error, 7)
    assert str(lost).startswith(
        f'lost worker 1 (127.0.0.1:{closed[1]}): worker 0 (127.0.0.1:{closed[0]}) waited for it'
    )
    assert 'timeout 7 s' in str(lost) and 'Collective has timed out' in str(lost)


def test_a_worker_that_accepts_connections_but_does_not_answer_is_named_unreachable():
    with socket.socket() as listening:  # a peer whose port is open but that never answers
        listening.bind(('127.0.0.1', 0))
        listening.listen()
        peer = f'127.0.0.1:{listening.getsockname()[1]}'
        cluster = distributed.WorkerCluster(('127.0.0.1:1', peer), 0)
        error = tf.errors.DeadlineExceededError(
            None, None, 'Collective has timed out during execution.'
        )
        lost = distributed.lost_worker_error(cluster, error, 10)
    assert str(lost).startswith(
        f'lost worker 1 ({peer}): worker 0 (127.0.0.1:1) waited for it before its first step '
        f'in a collective all-reduce (timeout 10 s, distributed.collective_timeout): worker 1 '
        f'({peer}) is unreachable (stopped or hung): its server accepts connections but did '
        f'not answer a read of its progress within 3 s'
    ), str(lost)


def test_a_worker_that_never_starts_is_named_after_the_startup_timeout():
    closed = free_ports(3)
    cluster = distributed.WorkerCluster(tuple(f'127.0.0.1:{p}' for p in closed), 1)
    start = time.monotonic()
    with pytest.raises(
        distributed.WorkerLostError,
        match=rf'^worker 0 \(127.0.0.1:{closed[0]}\), worker 2 '
        rf'\(127.0.0.1:{closed[2]}\) did not start: worker 1 '
        rf'\(127.0.0.1:{closed[1]}\) waited 1 s',
    ):
        distributed.wait_for_workers(cluster, 1.0, poll=0.1)
    assert time.monotonic() - start < 5


def workers_in_this_process(count, build, timeout=30):
    """``count`` workers on servers in this process: one (session, built) each, ``built``
    being what ``build(collectives)`` returns, called inside the worker's graph and device."""
    addresses = tuple(f'127.0.0.1:{port}' for port in free_ports(count))
    workers = []
    for index in range(count):
        collectives = distributed.Collectives(
            distributed.WorkerCluster(addresses, index), timeout=timeout
        )
        graph = tf.Graph()
        with graph.as_default(), tf.device(collectives.cluster.device):
            built = build(collectives)
        proto = collectives.session_config(tf.compat.v1.ConfigProto())
        server = collectives.start_server(proto)
        workers.append((tf.compat.v1.Session(server.target, graph=graph, config=proto), built))
    return workers


def run_together(calls, seconds=60):
    """Calls every function of ``calls`` at once, each in its own thread (collectives need
    all workers); their results in order, a tf.errors.OpError raised standing for its result."""
    results = [None] * len(calls)

    def run(i):
        try:
            results[i] = calls[i]()
        except tf.errors.OpError as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds)
    assert not any(t.is_alive() for t in threads), f'a worker still runs after {seconds} s'
    return results


def test_workers_agree_to_stop_and_on_a_non_finite_loss():
    """Two servers in this process, each feeding its own loss and vote to step_agreement."""

    def build(collectives):
        loss = tf.compat.v1.placeholder(tf.float32, [])
        vote, stop, mean_loss = collectives.step_agreement(loss)
        return loss, vote, (stop, mean_loss)

    workers = workers_in_this_process(2, build)

    def run_both(feeds):
        return run_together(
            [
                lambda sess=sess, loss=loss, vote=vote, fetches=fetches, feed=feed: sess.run(
                    fetches, {loss: feed[0], vote: feed[1]}
                )
                for (sess, (loss, vote, fetches)), feed in zip(workers, feeds)
            ]
        )

    try:
        assert run_both([(1.0, False), (3.0, False)]) == [(False, 2.0)] * 2
        assert run_both([(1.0, False), (3.0, True)]) == [(True, 2.0)] * 2
        for stop, mean_loss in run_both([(1.0, False), (np.nan, False)]):
            assert not stop and np.isnan(mean_loss)
    finally:
        for sess, _ in workers:
            sess.close()


def test_workers_stuck_before_a_step_are_named_behind_at_their_step():
    """Three servers in this process training a one-weight model: all take step 1, then
    worker 0 enters step 2 while workers 1 and 2 do not (as when their input pipeline hangs).
    Worker 0 times out in the all-reduce and names both, which answer, at step 1. (One
    waiting worker: with several servers of one process aborting collectives at once,
    TensorFlow 2.21 sometimes crashes.)"""
    timeout = 2

    def build(collectives):
        step = tf.compat.v1.train.get_or_create_global_step()
        weight = tf.compat.v1.Variable(1.0)
        optimizer = collectives.wrap_optimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1))
        with tf.control_dependencies([optimizer.minimize(weight * weight)]):
            train = tf.compat.v1.assign_add(step, 1)
        return train, tf.compat.v1.global_variables_initializer(), collectives.cluster

    workers = workers_in_this_process(3, build, timeout=timeout)
    (sess, (train, _, cluster)) = workers[0]
    try:
        for other, (_, init, _) in workers:
            other.run(init)
        assert run_together(
            [lambda s=other, t=step: s.run(t) for other, (step, _, _) in workers]
        ) == [1, 1, 1]
        start = time.monotonic()
        with pytest.raises(distributed.LOST_PEER_ERRORS) as error:
            sess.run(train)
        message = str(distributed.lost_worker_error(cluster, error.value, timeout))
        elapsed = time.monotonic() - start
    finally:
        for other, _ in workers:
            other.close()
    addresses = cluster.workers
    assert message.startswith(
        f'lost worker 1 ({addresses[1]}), worker 2 ({addresses[2]}): worker 0 '
        f'({addresses[0]}) waited for them in step 2 in a collective all-reduce (timeout 2 s, '
        f'distributed.collective_timeout): worker 1 ({addresses[1]}) answers but is behind, '
        f'at step 1: it has not entered step 2'
    ), message
    assert f'; worker 2 ({addresses[2]}) answers but is behind, at step 1' in message, message
    assert elapsed < timeout + distributed.PROBE_SECONDS + 5, elapsed


def test_collective_timeout_must_be_positive():
    cluster = distributed.WorkerCluster(('a:1', 'b:2'), 0)
    with pytest.raises(
        ValueError,
        match=r'distributed.collective_timeout: expected a positive '
        r'number of seconds, got 0',
    ):
        distributed.Collectives(cluster, timeout=0)


def test_a_signal_to_one_worker_stops_all_at_the_same_step_and_the_chief_saves(tiny_data, tmp_path):
    """SIGTERM to worker 1 alone: its stop request travels in the per-step agreement, so both
    workers stop after the same step (neither waits in an all-reduce for the timeout) and the
    chief saves that step."""
    run = launch_until_checkpoint(2, tiny_data, tmp_path, 60)
    launcher, pids, output, logs = run.launcher, run.pids, run.output, run.logs
    try:
        os.kill(pids[1], signal.SIGTERM)
        signalled = time.monotonic()
        out = launcher.communicate(timeout=120)[0]
        stopped_after = time.monotonic() - signalled
    finally:
        stop(launcher, pids)
    worker_logs = [(logs / f'worker_{i}.log').read_text() for i in (0, 1)]
    assert launcher.returncode == 0, out + worker_logs[0][-3000:] + worker_logs[1][-3000:]
    assert stopped_after < 60, stopped_after  # well inside the collective timeout
    steps = [int(re.search(r'stopped at step (\d+) ', log).group(1)) for log in worker_logs]
    assert steps[0] == steps[1] >= 2, steps
    assert 'stopped by SIGTERM' in worker_logs[1]
    assert tf.train.latest_checkpoint(output).endswith(f'model.ckpt-{steps[0]}')
