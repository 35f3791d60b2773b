"""The one tf.compat.v1.ConfigProto builder of edvr.train, edvr.infer, edvr.evaluate and the
benchmarks: intra-/inter-op thread pools from the config's ``threads`` section or flags.

TensorFlow makes its CPU thread pools once per process, with the settings of the first
Session; later sessions' thread settings are silently ignored. The tools create one session,
so this does not bite them; a process with many sessions (the benchmarks) calls
``start_thread_pools`` first.
"""

import os

import tensorflow as tf


def available_cpus():
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_counts(threads=None):
    """(intra_op, inter_op) for a ``threads`` section (dict, may be None or partial).

    Defaults (0): both the number of available CPUs, which is TensorFlow's own choice on a
    machine without CPU restrictions. On the 2-core machine we measure on, EDVR-M steps and
    frames were 5-10% slower with inter_op 1 (no overlap of the small ops with the large
    ones) and with intra_op above the core count, in interleaved runs.
    """
    threads = threads or {}
    for key in ('intra_op', 'inter_op'):
        if threads.get(key, 0) < 0:
            raise ValueError(f'threads.{key} must be >= 0 (0: automatic), got {threads[key]}')
    return (
        threads.get('intra_op') or available_cpus(),
        threads.get('inter_op') or available_cpus(),
    )


def session_config(threads=None, config=None):
    """A ConfigProto (``config`` updated, or a new one) with the thread pools of ``threads``."""
    config = config if config is not None else tf.compat.v1.ConfigProto()
    intra, inter = thread_counts(threads)
    config.intra_op_parallelism_threads = intra
    config.inter_op_parallelism_threads = inter
    return config


def start_thread_pools(threads=None):
    """Creates (and closes) a Session with ``threads``, so this process's thread pools, which
    the first Session fixes, follow them rather than whichever session comes first."""
    with tf.Graph().as_default():
        tf.compat.v1.Session(config=session_config(threads)).close()


def add_thread_flags(parser):
    """Adds --intra_op_threads and --inter_op_threads (overriding the config's ``threads``)."""
    parser.add_argument(
        '--intra_op_threads',
        type=int,
        default=None,
        help='threads inside one op (default: threads.intra_op of the config, '
        '0 = every available CPU)',
    )
    parser.add_argument(
        '--inter_op_threads',
        type=int,
        default=None,
        help='ops run concurrently (default: threads.inter_op of the config, '
        '0 = every available CPU)',
    )


def threads_from_flags(args, threads=None):
    """The ``threads`` section with the flags of ``add_thread_flags`` applied."""
    threads = dict(threads or {})
    if getattr(args, 'intra_op_threads', None) is not None:
        threads['intra_op'] = args.intra_op_threads
    if getattr(args, 'inter_op_threads', None) is not None:
        threads['inter_op'] = args.inter_op_threads
    return threads
