"""Several edvr.train workers in one process (one thread, server and session each), for the
multi-worker tests and the all-reduce share of a step in ``bench.report --multiworker``.

    python -m bench.multiworker [--quick] [--workers 2]

Each worker builds the graph ``edvr.train`` builds for it (placed on its task, gradients
all-reduced by ``edvr.training.distributed``, its shard of the sample stream), on servers at
free 127.0.0.1 ports. The workers share this process's CPU thread pools, as local worker
processes would share the cores.

    workers = LocalWorkers(config, data_dir, count=2)
    workers.steps(3)
    values = workers.variables()   # one {name: array} per worker
    workers.close()
"""

import argparse
import socket
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf

from bench import profile, workloads
from edvr.training import graph as training_graph
from edvr.data import reds
from edvr.session import session_config
from edvr.training import distributed


def free_ports(count):
    """``count`` distinct free TCP ports of 127.0.0.1, chosen by the kernel (bind to port 0)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Worker:
    """One worker's graph, server and session."""

    def __init__(self, cluster, config, data_dir, spec):
        self.cluster = cluster
        self.collectives = distributed.Collectives(
            cluster,
            config['distributed']['collective_timeout'],
            config['distributed']['startup_timeout'],
            average=config['train']['loss_reduction'] == 'mean',
        )
        self.graph_obj = tf.Graph()
        with self.graph_obj.as_default(), tf.device(cluster.device):
            self.graph = training_graph.TrainingGraph(
                config, data_dir, None, wrap_optimizer=self.collectives.wrap_optimizer
            )
            self.broadcast = self.collectives.broadcast_variables()
            dataset = training_graph.training_dataset(
                config, data_dir, spec, 0, cluster.size, cluster.index
            )
            self.next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
            self.variables = tf.compat.v1.global_variables()
        self.graph_obj.finalize()
        proto = self.collectives.session_config(session_config(config['threads']))
        self.server = self.collectives.start_server(proto)
        self.sess = tf.compat.v1.Session(self.server.target, graph=self.graph_obj, config=proto)

    def start(self):
        self.sess.run(self.graph.init)
        self.sess.run(self.broadcast)

    def step(self, options=None, run_metadata=None):
        """One training step; returns its wall time in seconds."""
        batch = self.sess.run(self.next_batch)
        start = time.perf_counter()
        self.sess.run(
            self.graph.train_ops.full,
            {self.graph.lr_frames: batch['lr'], self.graph.gt: batch['gt']},
            options=options,
            run_metadata=run_metadata,
        )
        return time.perf_counter() - start

    def values(self):
        return dict(zip([v.op.name for v in self.variables], self.sess.run(self.variables)))


class LocalWorkers:
    """``count`` workers of one job in this process; ``config``: a parsed config."""

    def __init__(self, config, data_dir, count=2):
        spec = reds.read_split(data_dir, 'train')
        addresses = tuple(f'127.0.0.1:{port}' for port in free_ports(count))
        self.workers = [
            Worker(distributed.WorkerCluster(addresses, i), config, data_dir, spec)
            for i in range(count)
        ]
        self.run_all(lambda worker: worker.start())

    def run_all(self, function):
        """``function(worker)`` on every worker at once (collectives need all); the results
        in worker order. Re-raises the first worker's error."""
        results, errors = [None] * len(self.workers), [None] * len(self.workers)

        def target(i):
            try:
                results[i] = function(self.workers[i])
            except Exception as error:  # pylint: disable=broad-except
                errors[i] = error

        threads = [threading.Thread(target=target, args=(i,)) for i in range(len(self.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for error in errors:
            if error is not None:
                raise error
        return results

    def steps(self, count):
        """``count`` training steps on every worker; their wall times (worker 0's)."""
        return [self.run_all(lambda worker: worker.step())[0] for _ in range(count)]

    def variables(self):
        return [worker.values() for worker in self.workers]

    def close(self):
        for worker in self.workers:
            worker.sess.close()


def gradient_bytes(train_ops):
    """Bytes one step all-reduces: the summed sizes of the gradients of ``train_ops.full``'s
    variables (the groups of edvr.training.optimizer)."""
    variables = [v for group in train_ops.groups.values() for v in group]
    return sum(int(np.prod(v.shape.as_list())) * v.dtype.base_dtype.size for v in variables)


def collective_share(metadata, wall):
    """From a traced step: seconds in collective ops (``Collective*``, including the wait for
    the other workers) and their share of the step's ``wall`` seconds."""
    rows = profile.time_by_op_type(metadata)['rows']
    seconds = sum(r['seconds'] for r in rows if r['op_type'].startswith('Collective'))
    return {
        'collective_seconds': seconds,
        'step_seconds': wall,
        'share': seconds / wall if wall else 0.0,
    }


def measure(config, data_dir, count=2, warmup=2, steps=3):
    """The all-reduce's part of a training step of ``count`` local workers: bytes per step,
    and from traced steps of worker 0 the time in collective ops and its share of the step
    (medians). Returns a JSON-able dict."""
    workers = LocalWorkers(config, data_dir, count)
    try:
        workers.steps(warmup)
        traced = []
        for _ in range(steps):

            def traced_step(worker):
                if not worker.cluster.chief:
                    worker.step(None, None)
                    return None
                walls = []
                metadata = profile.traced_run(
                    lambda options, run_metadata: walls.append(worker.step(options, run_metadata))
                )
                return collective_share(metadata, walls[0])

            traced.append(workers.run_all(traced_step)[0])
        chief = workers.workers[0]
        result = {key: float(np.median([t[key] for t in traced])) for key in traced[0]}
        result.update(
            workers=count,
            bytes_per_step=gradient_bytes(chief.graph.train_ops),
            batch_per_worker=config['train']['batch_size'],
            lr_crop=config['data']['lr_crop'],
        )
        return result
    finally:
        workers.close()


def format_measure(result):
    return (
        f'{result["workers"]} local workers, batch {result["batch_per_worker"]} each, '
        f'LR crop {result["lr_crop"]}: {result["bytes_per_step"] / 2**20:.2f} MiB of '
        f'gradients all-reduced per step; collective ops {result["collective_seconds"]:.3f} '
        f's of a {result["step_seconds"]:.3f} s step ({100 * result["share"]:.1f}%, median '
        f'of traced steps; includes waiting for the other worker)'
    )


def measure_size(size, count=2):
    """``measure`` on the model and sizes of ``bench.workloads.SIZES[size]`` (per worker),
    on a synthetic dataset in a temporary folder."""
    config = workloads.load_sized_config(size)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = workloads.ensure_synthetic(f'{tmp}/data', workloads.SIZES[size]['gt_frame'])
        result = measure(config, data_dir, count)
    result['size'] = size
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m bench.multiworker', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--quick', action='store_true', help='the tiny model at tiny sizes')
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    print(format_measure(measure_size('quick' if args.quick else 'full', args.workers)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
