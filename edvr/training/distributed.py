"""Data-parallel training across processes (one per GPU or CPU host) on TensorFlow's
collective runtime: the ops `MultiWorkerMirroredStrategy` is built on, in TF1 graph mode.

The cluster comes from ``TF_CONFIG`` (``{"cluster": {"worker": [...]}, "task": {"type":
"worker", "index": i}}``). Each worker runs a ``tf.distribute.Server`` and a session on it;
the graph is placed on the worker's own task, and workers meet only in collective ops:

- ``CollectiveReduce`` of the gradients (packed into one buffer per dtype, ring all-reduce),
  summed or averaged so that a step equals a single-process step on the global batch;
- ``CollectiveBcastSend``/``Recv`` of every variable from the chief (worker 0) after its
  initialisation or restore;
- a two-element ``CollectiveReduce`` per step by which workers agree to stop (``max_minutes``)
  and on the loss (a NaN on one worker stops all at the same step).

Every collective carries ``timeout_seconds``: a worker that dies, stalls or cannot be reached
makes the others fail within the timeout, and ``lost_worker_error`` turns TensorFlow's error
into ``WorkerLostError`` naming the worker (its task index and address). To find it, each
worker publishes its progress (the step it is entering) in a variable on its own task, which
the others read, each read bounded: a worker that does not answer is stopped or hung, one
that answers at an older step is stuck before the step, and one whose port is closed is gone.
The `MultiWorkerMirroredStrategy` object itself is not used: its TF1 form has no collective
timeout and wants its own replica-context training loop.

    cluster = WorkerCluster.from_env()            # None without TF_CONFIG
    collectives = Collectives(cluster, timeout=60, startup_timeout=600, average=False)
    server = collectives.start_server(session_config(...))
    with tf.device(cluster.device):
        ... build_train_ops(..., wrap_optimizer=collectives.wrap_optimizer)
        broadcast = collectives.broadcast_variables()
    sess = tf.compat.v1.Session(server.target, config=collectives.session_config(...))
"""

import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tensorflow as tf

JOB = 'worker'
GROUP_KEY = 1  # one group: all workers, one device each
ENV = 'TF_CONFIG'
# Errors with which a collective fails when a peer is gone: timed out (the attribute below),
# connection refused or reset, or aborted because another collective of the step failed.
LOST_PEER_ERRORS = (
    tf.errors.DeadlineExceededError,
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)
PROBE_SECONDS = 3.0  # how long a lost worker's survey waits for each peer (connect, read)
# The resource name of worker i's progress variable (int64: the step it is entering), which
# lives on worker i's own task; every worker's server shares its resources across sessions,
# so the other workers read it from sessions of their own.
PROGRESS_VARIABLE = 'edvr_worker_progress_{index}'


class WorkerLostError(RuntimeError):
    """A collective failed because a worker died, hung, or cannot be reached."""

    exit_code = 4  # edvr.cli.EXIT_WORKER_LOST


@dataclass(frozen=True)
class WorkerCluster:
    """The workers of the job (``host:port`` each, by task index) and this process's index."""

    workers: tuple
    index: int

    @classmethod
    def from_env(cls, env=None):
        """From ``TF_CONFIG`` (the format TFConfigClusterResolver reads; parsed here so that
        errors say what is wrong); None when it is unset or empty.

        Raises ValueError naming TF_CONFIG and what it holds when it is not a worker-only
        cluster with a valid task index."""
        env = os.environ if env is None else env
        text = env.get(ENV, '').strip()
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError as error:
            raise ValueError(f'{ENV}: expected JSON, got {text!r} ({error})') from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get('cluster'), dict):
            raise ValueError(
                f'{ENV}: expected {{"cluster": {{"worker": ["host:port", ...]}}, '
                f'"task": {{"type": "worker", "index": i}}}}, got {text!r}'
            )
        jobs = sorted(parsed['cluster'])
        if jobs != [JOB]:
            raise ValueError(
                f'{ENV}: expected a cluster of "worker" tasks only (worker 0 is '
                f'the chief), got jobs {jobs}'
            )
        workers = tuple(parsed['cluster'][JOB])
        task = parsed.get('task') or {}
        if (
            task.get('type') != JOB
            or not isinstance(task.get('index'), int)
            or not 0 <= task['index'] < len(workers)
        ):
            raise ValueError(
                f'{ENV}: task must be {{"type": "worker", "index": i}} with 0 <= i '
                f'< {len(workers)}, got {task!r}'
            )
        for address in workers:
            host, _, port = str(address).rpartition(':')
            if not host or not port.isdigit():
                raise ValueError(f'{ENV}: worker addresses must be "host:port", got {address!r}')
        return cls(workers, task['index'])

    @property
    def size(self):
        return len(self.workers)

    @property
    def chief(self):
        """Worker 0 writes checkpoints, summaries, the config copy and validation results."""
        return self.index == 0

    @property
    def address(self):
        return self.workers[self.index]

    @property
    def device(self):
        """The device of this worker's whole graph (its own task's CPU; GPU ops are placed on
        the task's GPU by soft placement)."""
        return self.task_device(self.index)

    @staticmethod
    def task_device(index):
        return f'/job:{JOB}/replica:0/task:{index}'

    def cluster_spec(self):
        return tf.compat.v1.train.ClusterSpec({JOB: list(self.workers)})

    def describe(self, index):
        return f'worker {index} ({self.workers[index]})'


def accepts_connections(address, timeout=PROBE_SECONDS):
    """Whether something listens at ``address`` (``host:port``)."""
    host, _, port = address.rpartition(':')
    try:
        socket.create_connection((host.strip('[]'), int(port)), timeout).close()
    except OSError:
        return False
    return True


def unreachable_workers(cluster, timeout=PROBE_SECONDS):
    """Indices of the other workers whose server port does not accept a connection."""
    return [
        index
        for index, address in enumerate(cluster.workers)
        if index != cluster.index and not accepts_connections(address, timeout)
    ]


def wait_for_workers(cluster, seconds, poll=0.5):
    """Waits until every other worker's server accepts connections; WorkerLostError naming
    those that do not within ``seconds``. Run before the first collective: a worker whose
    group leader (worker 0) never starts would otherwise retry forever (TensorFlow bounds
    the collective itself, not the search for the leader)."""
    deadline = time.monotonic() + seconds
    missing = unreachable_workers(cluster, timeout=min(PROBE_SECONDS, seconds))
    while missing and time.monotonic() < deadline:
        time.sleep(poll)
        missing = unreachable_workers(cluster, timeout=min(PROBE_SECONDS, seconds))
    if missing:
        raise WorkerLostError(
            f'{", ".join(cluster.describe(i) for i in missing)} did not start: '
            f'{cluster.describe(cluster.index)} waited {seconds:g} s '
            f'(distributed.startup_timeout) for its server. Start every worker of TF_CONFIG '
            f'with the same arguments, and check the addresses'
        )


def error_summary(error):
    """The status line of a session error (the line after "From /job:...:" in TF 2's graph
    execution errors), else its first line."""
    lines = [line.strip() for line in (error.message or '').splitlines()]
    for before, line in zip(lines, lines[1:]):
        if before.startswith('From /job:') and line:
            return line
    return lines[0] if lines else ''


def progress_handle(index):
    """Worker ``index``'s progress variable: a resource handle (int64 scalar) on its task."""
    with tf.device(WorkerCluster.task_device(index)):
        return tf.compat.v1.raw_ops.VarHandleOp(
            dtype=tf.int64, shape=[], shared_name=PROGRESS_VARIABLE.format(index=index)
        )


def read_progress(address, index, timeout):
    """The step worker ``index`` last entered, read from its server at ``address`` within
    ``timeout`` seconds; None when it has entered none since its process started.

    Raises tf.errors.DeadlineExceededError when the worker does not answer in time (stopped
    or hung), other tf.errors.OpError when it cannot be reached."""
    graph = tf.Graph()
    with graph.as_default():
        read = tf.compat.v1.raw_ops.ReadVariableOp(resource=progress_handle(index), dtype=tf.int64)
    milliseconds = max(1, int(timeout * 1000))
    # A session on the worker's own server, not on this one's: a master session that has
    # placed a graph on a stopped worker waits for it forever when it closes. Here only the
    # gRPC calls from this process wait, each bounded by operation_timeout_in_ms.
    config = tf.compat.v1.ConfigProto(
        device_filters=[f'/job:{JOB}/task:{index}'], operation_timeout_in_ms=milliseconds
    )
    sess = tf.compat.v1.Session(f'grpc://{address}', graph=graph, config=config)
    try:
        return int(sess.run(read, options=tf.compat.v1.RunOptions(timeout_in_ms=milliseconds)))
    except (tf.errors.FailedPreconditionError, tf.errors.NotFoundError):
        return None  # the variable does not exist yet: the worker has published no step
    finally:
        try:
            sess.close()
        except tf.errors.OpError:
            pass  # it stopped answering after the session was made: nothing to release here


GONE, SILENT, ANSWERED = 'gone', 'silent', 'answered'


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker's server says when a collective failed: ``state`` GONE (its port is
    closed), SILENT (its port accepts connections but it did not answer a read of its
    progress in time: stopped or hung) or ANSWERED, with ``step`` the step it last entered
    (None: none yet)."""

    index: int
    state: str
    step: Optional[int] = None


def worker_status(cluster, index, timeout=PROBE_SECONDS):
    """The WorkerStatus of worker ``index``, found within about ``timeout`` seconds (twice
    that at the most, when its host does not answer a connection either)."""
    address = cluster.workers[index]
    deadline = time.monotonic() + timeout
    while True:
        try:
            step = read_progress(address, index, max(deadline - time.monotonic(), 0.1))
            return WorkerStatus(index, ANSWERED, step)
        except tf.errors.DeadlineExceededError:
            timed_out = True
        except tf.errors.OpError:
            timed_out = False  # connection refused or reset
        if not accepts_connections(address):
            return WorkerStatus(index, GONE)
        if timed_out or time.monotonic() >= deadline:
            return WorkerStatus(index, SILENT)
        # A killed worker's connections are reset a moment before its listening port
        # closes: look again before calling it silent.
        time.sleep(0.25)


def survey_workers(cluster, timeout=PROBE_SECONDS):
    """The WorkerStatus of every worker (this one included), in index order; the workers are
    asked at once, so this takes about ``timeout`` seconds when one is silent."""
    with ThreadPoolExecutor(cluster.size) as pool:
        return list(
            pool.map(lambda index: worker_status(cluster, index, timeout), range(cluster.size))
        )


def _what_happened(status, cluster, step):
    """Why worker ``status.index`` did not join this worker's collective of ``step``."""
    name = cluster.describe(status.index)
    if status.state == GONE:
        return f'{name} no longer accepts connections: it has stopped or its host is unreachable'
    if status.state == SILENT:
        return (
            f'{name} is unreachable (stopped or hung): its server accepts connections but '
            f'did not answer a read of its progress within {PROBE_SECONDS:g} s (a stopped '
            f'process, SIGSTOP or a debugger, or a hung one)'
        )
    where = f'at step {status.step}' if status.step is not None else 'at no step yet'
    return (
        f'{name} answers but is behind, {where}: it has not entered step {step} (stuck '
        f'before it, e.g. in its input pipeline, a checkpoint save or validation, or '
        f'slower than the timeout)'
    )


def lost_worker_error(cluster, error, timeout):
    """A WorkerLostError for a collective that failed with ``error`` on this worker, naming
    the workers that did not arrive: gone (port closed), unreachable (stopped or hung: no
    answer within PROBE_SECONDS), or behind (answers at an older step than this worker's)."""
    statuses = survey_workers(cluster)
    mine = statuses[cluster.index].step
    others = [s for s in statuses if s.index != cluster.index]
    lost = [
        s
        for s in others
        if s.state != ANSWERED or (mine is not None and (s.step is None or s.step < mine))
    ]
    me = cluster.describe(cluster.index)
    where = f'in step {mine}' if mine is not None else 'before its first step'
    reason = f'{type(error).__name__}: {error_summary(error)}'
    settings = f'timeout {timeout:g} s, distributed.collective_timeout'
    if lost:
        names = ', '.join(cluster.describe(s.index) for s in lost)
        details = '; '.join(_what_happened(s, cluster, mine) for s in lost)
        arrived = [cluster.describe(s.index) for s in others if s not in lost]
        arrived = f' Also waiting: {", ".join(arrived)}.' if arrived else ''
        return WorkerLostError(
            f'lost {names}: {me} waited for {"it" if len(lost) == 1 else "them"} {where} in '
            f'a collective all-reduce ({settings}): {details}.{arrived} Restart all workers '
            f'with --resume. ({reason})'
        )
    steps = ', '.join(f'{cluster.describe(s.index)} at step {s.step}' for s in others)
    return WorkerLostError(
        f'a collective all-reduce on {me} failed {where}, but every other worker answers and '
        f'has entered the same step or a later one ({steps}): one of them is slower than the '
        f'timeout ({timeout:g} s, distributed.collective_timeout), or they run with different '
        f'arguments. Restart all workers with --resume. ({reason})'
    )


def exit_at_once(status):
    """Ends this process with ``status`` without Python's and TensorFlow's teardown: for a
    worker that lost a peer, once its error is printed and the chief's checkpoint saved.
    The teardown waits for gRPC calls to a stopped peer: 13-22 s measured after a SIGSTOP
    (3 workers, 2 loaded cores), against under 1 s this way."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def exit_if_stuck(error, status, seconds=PROBE_SECONDS):
    """Arms a timer for a worker about to raise ``error`` (a WorkerLostError): if the process
    still runs ``seconds`` later, the timer prints ``error`` and ends the process with
    ``status``. Closing the training session can wait for gRPC calls to a stalled peer (20 to
    30 s measured after a SIGSTOP); it has nothing left to do. Only for a process that ends
    on this error (``python -m edvr.train``)."""

    def stop():
        print(
            f'edvr.train: error: {error} (the session did not close within {seconds:g} s)',
            file=sys.stderr,
        )
        exit_at_once(status)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


def _supports_timeout():
    """Whether this TensorFlow's collective ops have ``timeout_seconds`` (TF >= 2.3; not 1.15)."""
    with tf.Graph().as_default():
        try:
            tf.compat.v1.raw_ops.CollectiveReduce(
                input=tf.zeros([1]),
                group_size=1,
                group_key=GROUP_KEY,
                instance_key=1,
                merge_op='Add',
                final_op='Id',
                subdiv_offsets=[0],
                timeout_seconds=1.0,
            )
        except TypeError:
            return False
    return True


class Collectives:
    """Builds this worker's collective ops, each with its own instance key. Every worker must
    build the same collectives in the same order (the same graph): keys pair them up."""

    def __init__(self, cluster, timeout=60.0, startup_timeout=600.0, average=False):
        """timeout: seconds a collective of a training step may wait for the other workers;
        startup_timeout: the same for the first one (the broadcast), which waits for every
        worker to start; average: average the gradients (loss_reduction ``mean``) rather
        than sum them (``sum``), so a step equals the single-process step on the global batch."""
        for key, value in (('collective_timeout', timeout), ('startup_timeout', startup_timeout)):
            if not value > 0:
                raise ValueError(
                    f'distributed.{key}: expected a positive number of seconds, got {value!r}'
                )
        self.cluster = cluster
        self.timeout = float(timeout)
        self.startup_timeout = float(startup_timeout)
        self.average = average
        self._next_key = 1
        self._timeouts = _supports_timeout()
        if not self._timeouts:
            tf.compat.v1.logging.warning(
                'this TensorFlow (%s) has no timeout_seconds on collective ops: a lost worker '
                'makes the others wait forever instead of failing after %g s. Use TF >= 2.3 for '
                'multi-worker training.',
                tf.version.VERSION,
                self.timeout,
            )
        self.reduced_bytes = 0  # per step and train op: what the gradient all-reduces carry
        self._publish = None  # the op setting this worker's progress, made once per graph

    def _key(self):
        key, self._next_key = self._next_key, self._next_key + 1
        return key

    def _common(self, timeout):
        attrs = dict(group_size=self.cluster.size, group_key=GROUP_KEY, instance_key=self._key())
        if self._timeouts:
            attrs['timeout_seconds'] = timeout
        return attrs

    def reduce(self, tensor, merge_op='Add', final_op='Id', timeout=None):
        """All-reduce of ``tensor`` (any shape) over the workers."""
        return tf.compat.v1.raw_ops.CollectiveReduce(
            input=tensor,
            merge_op=merge_op,
            final_op=final_op,
            subdiv_offsets=[0],
            **self._common(timeout or self.timeout),
        )

    def publish_progress(self):
        """The op setting this worker's progress variable to the step it enters (the global
        step + 1), which every gradient all-reduce waits for; made once per graph. When a
        collective fails, the others read it (``lost_worker_error``): a worker found at an
        older step never reached the step's all-reduce."""
        graph = tf.compat.v1.get_default_graph()
        if self._publish is None or self._publish.graph is not graph:
            step = tf.compat.v1.train.get_global_step()
            if step is None:
                raise ValueError(
                    'Collectives.all_reduce_gradients: the graph has no global '
                    'step (tf.compat.v1.train.get_or_create_global_step); it '
                    'publishes the step each worker enters'
                )
            # Outside the caller's control dependencies: one op for every train op of the graph.
            with tf.control_dependencies(None), tf.device(
                self.cluster.device
            ), tf.compat.v1.name_scope('publish_progress'):
                self._publish = tf.compat.v1.raw_ops.AssignVariableOp(
                    resource=progress_handle(self.cluster.index),
                    value=tf.cast(step.read_value(), tf.int64) + 1,
                )
        return self._publish

    def all_reduce_gradients(self, gradients):
        """Sum (or mean, with ``average``) over the workers of each gradient, as one packed
        all-reduce per dtype. gradients: list of tensors (IndexedSlices are densified).
        The all-reduces wait for ``publish_progress``, so the progress a stalled worker shows
        is the step it last entered (the global step, incremented after them, is read first)."""
        publish = self.publish_progress()
        gradients = [tf.convert_to_tensor(g) for g in gradients]
        reduced = [None] * len(gradients)
        by_dtype = {}
        for i, g in enumerate(gradients):
            by_dtype.setdefault(g.dtype.base_dtype, []).append(i)
        for dtype, members in by_dtype.items():
            with tf.compat.v1.name_scope('all_reduce_gradients'):
                sizes = [int(np.prod(gradients[i].shape.as_list())) for i in members]
                with tf.control_dependencies([publish]):
                    packed = tf.concat([tf.reshape(gradients[i], [-1]) for i in members], 0)
                summed = self.reduce(packed, 'Add', 'Div' if self.average else 'Id')
                for i, part in zip(members, tf.split(summed, sizes)):
                    reduced[i] = tf.reshape(part, tf.shape(gradients[i]))
            self.reduced_bytes += sum(sizes) * dtype.size
        return reduced

    def wrap_optimizer(self, optimizer):
        """The optimizer with its gradients all-reduced (``build_train_ops``' wrap_optimizer)."""
        return AllReduceOptimizer(optimizer, self)

    def broadcast_variables(self, variables=None):
        """An op giving every worker the chief's values of ``variables`` (default: all
        global variables, including optimizer slots and the step); run once after
        initialisation or restore. Packed into one broadcast per dtype."""
        variables = tf.compat.v1.global_variables() if variables is None else variables
        by_dtype = {}
        for v in variables:
            by_dtype.setdefault(v.dtype.base_dtype, []).append(v)
        assigns = []
        with tf.compat.v1.name_scope('broadcast_variables'):
            for dtype, members in by_dtype.items():
                sizes = [int(np.prod(v.shape.as_list())) for v in members]
                attrs = dict(self._common(self.startup_timeout), shape=[sum(sizes)])
                if self.cluster.chief:
                    packed = tf.concat([tf.reshape(v.read_value(), [-1]) for v in members], 0)
                    sent = tf.compat.v1.raw_ops.CollectiveBcastSend(input=packed, **attrs)
                    assigns.append(sent.op)
                    continue
                received = tf.compat.v1.raw_ops.CollectiveBcastRecv(T=dtype, **attrs)
                for v, part in zip(members, tf.split(received, sizes)):
                    assigns.append(tf.compat.v1.assign(v, tf.reshape(part, v.shape)).op)
        return tf.group(*assigns, name='broadcast_variables')

    def step_agreement(self, loss):
        """(vote, stop, mean_loss), one small all-reduce to fetch with each step: feed
        ``vote`` True on a worker that wants to stop after this step (its time limit);
        ``stop`` is True on every worker when any voted, and ``mean_loss`` is the workers'
        mean loss (NaN everywhere when one worker's is), so that all stop at the same step."""
        vote = tf.compat.v1.placeholder_with_default(False, [], name='stop_vote')
        packed = tf.stack([tf.cast(vote, tf.float32), tf.cast(loss, tf.float32)])
        summed = self.reduce(packed, 'Add', 'Id')
        return vote, summed[0] > 0, summed[1] / self.cluster.size

    def start_server(self, config):
        """Starts this worker's server (the session's target) with ``config`` (ConfigProto)."""
        return tf.compat.v1.distribute.Server(
            self.cluster.cluster_spec(),
            job_name=JOB,
            task_index=self.cluster.index,
            config=self.session_config(config),
            start=True,
        )

    def session_config(self, config):
        """``config`` set up for collectives: worker 0 leads group resolution; this worker's
        session sees only its own task's devices."""
        config.experimental.collective_group_leader = f'/job:{JOB}/replica:0/task:0'
        del config.device_filters[:]
        config.device_filters.append(f'/job:{JOB}/task:{self.cluster.index}')
        config.allow_soft_placement = True
        return config


class AllReduceOptimizer(tf.compat.v1.train.Optimizer):
    """Wraps an optimizer: ``compute_gradients`` all-reduces the gradients over the workers,
    ``apply_gradients`` is the wrapped optimizer's."""

    def __init__(self, optimizer, collectives, name='AllReduceOptimizer'):
        super().__init__(use_locking=False, name=name)
        self._optimizer = optimizer
        self._collectives = collectives

    def compute_gradients(self, *args, **kwargs):
        pairs = [
            (g, v) for g, v in self._optimizer.compute_gradients(*args, **kwargs) if g is not None
        ]
        reduced = self._collectives.all_reduce_gradients([g for g, _ in pairs])
        return list(zip(reduced, [v for _, v in pairs]))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step=global_step, name=name)


def check_start_step(cluster, step, expected, output):
    """After the broadcast: this worker's step (the chief's) must be the one it read from the
    run folder, else its data stream would start at the wrong sample."""
    if step != expected:
        raise ValueError(
            f'{cluster.describe(cluster.index)} read step {expected} from the run folder '
            f'{output}, but the chief (worker 0) is at step {step}: every worker must see the '
            f'same --output (a shared folder on several hosts) and get the same arguments'
        )
