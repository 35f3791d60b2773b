"""The training run of EDVR: the dataset check, the cluster (NPU ranks or TF_CONFIG workers),
the session that restores or initialises the variables, and the loop of training steps with
its checkpoints, summaries and validation. ``edvr.train`` is its command line."""

import collections
import math
import os
import time

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from edvr import npu, precision
from edvr.checkpoint import CheckpointManager, CheckpointSaveError, checkpoint_step, restore
from edvr.data import reds
from edvr.session import session_config
from edvr.training import distributed, monitor
from edvr.training.graph import TrainingGraph, training_dataset
from edvr.training.optimizer import fusion_warmup_active
from edvr.training.stop_signals import StopSignals
from edvr.validation import format_table


def check_data(data_dir, config, log):
    """Checks the dataset in ``data_dir``; returns the specs of its train and val splits (val:
    None when the folder has none)."""
    verify = config['data']['verify_pixels']
    start = time.time()
    train_spec = reds.check_dataset(data_dir, 'train', verify_pixels=verify)
    val_spec = (
        reds.check_dataset(data_dir, 'val', verify_pixels=verify)
        if os.path.isfile(reds.split_file(data_dir, 'val'))
        else None
    )
    frames = sum(v.nframes for v in train_spec.videos)
    log(
        f'dataset {data_dir}: {len(train_spec.videos)} training clips ({frames} frames), '
        f'{len(val_spec.videos) if val_spec else 0} validation clips; checked in '
        f'{time.time() - start:.1f} s'
    )
    return train_spec, val_spec


Cluster = collections.namedtuple('Cluster', 'setup workers collectives chief')
Cluster.__doc__ = """Where this process trains. ``setup``: npu.NpuTraining (``--device npu``) or
None; ``workers``: distributed.WorkerCluster of a multi-worker run (TF_CONFIG) or None;
``collectives``: its distributed.Collectives; ``chief``: whether this process writes
checkpoints, summaries and the run folder (rank 0, the chief worker)."""


def start_cluster(config, device, log):
    """The Cluster of this process for ``device`` ('cpu' or 'npu') and the environment
    (RANK_* for the NPU, TF_CONFIG for several workers)."""
    train_cfg = config['train']
    setup = None  # --device cpu: plain optimisers, default session
    if device == 'npu':  # first: without npu_bridge, stop before touching the data
        setup = npu.NpuTraining.from_env(
            mixed_precision=train_cfg['mixed_precision'], loss_scale=train_cfg['loss_scale']
        )
        log(
            f'npu: rank {setup.cluster.rank_id} of {setup.cluster.rank_size}, device '
            f'{setup.cluster.device_id}, precision_mode {setup.precision_mode}, loss scale '
            f'{setup.loss_scale}'
        )
    workers = distributed.WorkerCluster.from_env()
    workers = workers if workers is not None and workers.size > 1 else None
    collectives = None
    if workers is not None:
        if setup is not None:
            raise ValueError(
                '--device npu trains over HCCL (RANK_SIZE, RANK_TABLE_FILE); unset '
                'TF_CONFIG, which is for multi-worker training on CPU or GPU'
            )
        collectives = distributed.Collectives(
            workers,
            config['distributed']['collective_timeout'],
            config['distributed']['startup_timeout'],
            average=train_cfg['loss_reduction'] == 'mean',
        )
        log(
            f'multi-worker: {workers.describe(workers.index)} of {workers.size}'
            f'{" (chief)" if workers.chief else ""}; collective timeout '
            f'{collectives.timeout:g} s'
        )
    chief = (setup is None or setup.cluster.rank_id == 0) and (workers is None or workers.chief)
    return Cluster(setup, workers, collectives, chief)


def run_training(
    config,
    cluster,
    data_dir,
    train_spec,
    val_spec,
    output,
    latest,
    device='cpu',
    progress=True,
    resume_command=None,
    log=print,
):
    """Trains as ``config`` says on ``cluster`` (start_cluster) into the run folder ``output``,
    from the checkpoint ``latest`` (None: from scratch); returns (last step, final validation
    results or None). ``resume_command``: the command line that continues the run, logged
    when a signal stops it."""
    train_cfg = config['train']
    setup, workers, collectives, chief = cluster
    start_step = checkpoint_step(latest) if latest else 0

    graph_obj = tf.Graph()
    # Multi-worker: the whole graph on this worker's task; every worker validates (only the
    # chief writes the results), so none waits in an all-reduce while the chief validates.
    with graph_obj.as_default(), tf.device(workers.device if workers else None):
        compute_dtype = precision.compute_dtype(train_cfg['mixed_precision'], device)
        if workers is not None and compute_dtype != tf.float32:
            # In a session on a tf.distribute.Server, grappler fuses the bfloat16 convolutions
            # into TF's own _FusedConv2D, which has no bfloat16 kernel (oneDNN's does).
            log(
                'multi-worker: bfloat16 is not supported on a distributed server session; '
                'computing in float32'
            )
            compute_dtype = tf.float32
        log(
            f'precision: {"mixed" if train_cfg["mixed_precision"] else "fp32"}, model computes '
            f'in {compute_dtype.name}'
        )
        validates = train_cfg['validate_every'] and (chief or workers is not None)
        # The data-parallel runtime, if any: HCCL on the NPU or collectives across workers;
        # both wrap the optimizer and broadcast rank 0's variables.
        parallel = setup or collectives
        graph = TrainingGraph(
            config,
            data_dir,
            val_spec if validates else None,
            wrap_optimizer=parallel.wrap_optimizer if parallel else None,
            compute_dtype=compute_dtype,
        )
        broadcast = parallel.broadcast_variables() if parallel else None
        agreement = collectives.step_agreement(graph.loss) if collectives else None
        # Each rank reads its own shard of the one sample stream; batch_size is per rank.
        if setup:
            ranks = setup.cluster
        elif workers:
            ranks = npu.ClusterInfo(rank_size=workers.size, rank_id=workers.index)
        else:
            ranks = npu.ClusterInfo()
        dataset = training_dataset(
            config, data_dir, train_spec, start_step, ranks.rank_size, ranks.rank_id
        )
        next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        writer = (
            tf.compat.v1.summary.FileWriter(os.path.join(output, 'logs'), graph_obj)
            if chief
            else _NoSummaries()
        )
    graph_obj.finalize()
    checkpoints = CheckpointManager(output, graph.saver, train_cfg['max_to_keep'])
    config_proto = session_config(config['threads'])
    if setup:
        config_proto.allow_soft_placement = True
        config_proto = setup.session_config(config_proto)
    target = ''
    if collectives:
        config_proto = collectives.session_config(config_proto)
        target = collectives.start_server(config_proto).target
    # Saver and FileWriter refuse to work in eager mode: stay inside the graph context.
    with graph_obj.as_default(), tf.compat.v1.Session(
        target, graph=graph_obj, config=config_proto
    ) as sess:
        try:
            if latest:  # verified by newest_intact_checkpoint; the graph is finalized
                restore(
                    sess, latest, tf.compat.v1.global_variables(), saver=graph.saver, verify=False
                )
                restored = int(sess.run(graph.global_step))
                if restored != start_step:
                    raise ValueError(
                        f'{latest}: global_step is {restored}, the name says {start_step}'
                    )
                log(f'resumed from {latest} at step {start_step}')
            else:
                sess.run(graph.init)
            if workers is not None:
                distributed.wait_for_workers(workers, collectives.startup_timeout)
            if broadcast is not None:
                sess.run(broadcast)  # every rank starts from rank 0's variables
            if workers is not None:
                distributed.check_start_step(
                    workers, int(sess.run(graph.global_step)), start_step, output
                )
            with StopSignals(log) as stop:
                return run_loop(
                    sess,
                    graph,
                    next_batch,
                    checkpoints,
                    writer,
                    config,
                    start_step,
                    log,
                    progress=progress,
                    chief=chief,
                    stop=stop,
                    last_saved=latest,
                    resume_command=resume_command,
                    agreement=agreement,
                )
        except distributed.LOST_PEER_ERRORS as error:
            if workers is None:
                raise
            lost = distributed.lost_worker_error(workers, error, collectives.timeout)
            if chief:  # a failed all-reduce applies no update: the variables are a whole step
                step, saved = int(sess.run(graph.global_step)), checkpoints.latest()
                if step > 0 and (saved is None or checkpoint_step(saved) != step):
                    log(f'saved {checkpoints.save(sess, step)} before stopping')
            distributed.exit_if_stuck(lost, lost.exit_code)
            raise lost from error
        finally:
            writer.close()


def validate(sess, graph, writer, step, log):
    start = time.time()
    results = graph.evaluator.run(sess)
    log(f'validation at step {step} ({time.time() - start:.1f} s):\n{format_table(results)}')
    average = results['average']
    writer.add_summary(
        monitor.scalar_summary(
            {f'val/{method}_{m}': average[method][m] for method in average for m in average[method]}
        ),
        step,
    )
    return results


class _NoSummaries:
    """The summary writer of ranks other than 0: only rank 0 writes TensorBoard logs."""

    def add_summary(self, *args, **kwargs):
        pass

    def close(self):
        pass


def save_checkpoint(checkpoints, sess, step, keep_going, log):
    """Saves at ``step``; returns the prefix, or None when the save failed and ``keep_going``
    (train.keep_going_on_save_error) says to try again at the next interval. The last save
    of a run passes ``keep_going=False``: there is no next interval."""
    try:
        prefix = checkpoints.save(sess, step)
        log(f'step {step}: saved {prefix}')
        return prefix
    except CheckpointSaveError as e:
        if not keep_going:
            raise CheckpointSaveError(
                f'{e}. Free disk space and continue with --resume, or set '
                f'train.keep_going_on_save_error: true to try again at the next '
                f'checkpoint_every'
            ) from e
        log(
            f'warning: {e}; training goes on and saves again at the next checkpoint '
            f'(train.keep_going_on_save_error)'
        )
        return None


def run_loop(
    sess,
    graph,
    next_batch,
    checkpoints,
    writer,
    config,
    step,
    log,
    progress=True,
    chief=True,
    stop=None,
    last_saved=None,
    resume_command=None,
    agreement=None,
):
    """The training steps; checkpoints are saved only by the ``chief`` (rank 0).

    ``stop``: a StopSignals; once it is requested the loop ends after the current step and
    saves. ``last_saved``: the checkpoint the run resumed from (not saved again). With several
    workers, ``agreement`` (``Collectives.step_agreement``) makes them all stop at the same
    step when one reaches ``max_minutes``, is asked to stop by a signal, or has a non-finite
    loss; the loss shown is then the workers' mean.
    """
    train_cfg = config['train']
    max_steps, tsa_iter = train_cfg['max_steps'], train_cfg['tsa_iter']
    keep_going = train_cfg['keep_going_on_save_error']
    limit = train_cfg['max_minutes'] * 60 if train_cfg['max_minutes'] else math.inf
    wait_time = step_time = 0.0
    results, validated_at = None, None
    time_up = False
    if tsa_iter and fusion_warmup_active(step, tsa_iter):
        log(f'training only the fusion module until step {tsa_iter - 1} (train.tsa_iter)')
    bar = tqdm(
        total=max_steps,
        initial=step,
        desc='train',
        unit='step',
        dynamic_ncols=True,
        disable=not progress,
        smoothing=0.1,
    )
    try:
        while step < max_steps and not time_up:
            start = time.perf_counter()
            batch = sess.run(next_batch)
            fetched = time.perf_counter()
            warmup = fusion_warmup_active(step, tsa_iter)
            fetches = {
                'op': graph.train_ops.fusion_only if warmup else graph.train_ops.full,
                'loss': graph.loss,
                'lr': graph.train_ops.lr,
            }
            summary_step = (step + 1) % train_cfg['log_every'] == 0
            if summary_step:
                fetches.update(scalars=graph.scalar_summaries, max_offset=graph.max_offset)
            if (step + 1) % train_cfg['image_summary_every'] == 0:
                fetches['images'] = graph.image_summary
            feed = {graph.lr_frames: batch['lr'], graph.gt: batch['gt']}
            if agreement is not None:  # all workers stop after the step in which one ran out
                stopping = stop is not None and stop.requested.is_set()
                feed[agreement[0]] = step_time >= limit or stopping
                fetches['time_up'], fetches['loss'] = agreement[1:]
            got = sess.run(fetches, feed)
            done = time.perf_counter()
            wait_time += fetched - start
            step_time += done - start
            step += 1
            time_up = bool(got['time_up']) if agreement is not None else step_time >= limit
            if not np.isfinite(got['loss']):
                kept = checkpoints.latest()
                raise FloatingPointError(
                    f'loss is {got["loss"]} at step {step}; stopped without saving. The last '
                    f'good checkpoint is {kept or "none (no checkpoint saved yet)"}. Lower '
                    f'train.lr, check the data, or resume from it with --resume'
                )
            if warmup and not fusion_warmup_active(step, tsa_iter):
                log(f'step {step}: fusion warm-up over, training all parameters')
            bar.update(1)
            bar.set_postfix(
                loss=f'{got["loss"]:.4g}',
                lr=f'{got["lr"]:.3g}',
                wait=f'{100 * wait_time / step_time:.1f}%',
                refresh=False,
            )
            if summary_step:
                writer.add_summary(got['scalars'], step)
                writer.add_summary(
                    monitor.scalar_summary({'train/input_wait_share': wait_time / step_time}), step
                )
                if got['max_offset'] > train_cfg['offset_warning_threshold']:
                    bar.write(
                        f'warning: step {step}: mean |DCN offset| is '
                        f'{got["max_offset"]:.1f}, above '
                        f'train.offset_warning_threshold '
                        f'({train_cfg["offset_warning_threshold"]}); training may be '
                        f'diverging'
                    )
            if 'images' in got:
                writer.add_summary(got['images'], step)
            if chief and step % train_cfg['checkpoint_every'] == 0:
                last_saved = save_checkpoint(checkpoints, sess, step, keep_going, log) or last_saved
            if (
                train_cfg['validate_every']
                and step % train_cfg['validate_every'] == 0
                and graph.evaluator is not None
            ):
                results, validated_at = validate(sess, graph, writer, step, bar.write), step
            # With several workers a signal stops this worker through the agreement above, at
            # the same step as the others; breaking alone would leave them in an all-reduce.
            if stop is not None and stop.requested.is_set() and agreement is None:
                break
    except KeyboardInterrupt:
        bar.close()
        step = int(sess.run(graph.global_step))  # the interrupted step may have completed
        log(f'interrupted at step {step}; saving')
    finally:
        bar.close()
    if chief and step > 0 and (last_saved is None or checkpoint_step(last_saved) != step):
        last_saved = save_checkpoint(checkpoints, sess, step, False, log)
    share = 100 * wait_time / step_time if step_time else 0.0
    log(
        f'stopped at step {step} after {step_time / 60:.1f} min of training steps; waiting '
        f'on input took {share:.1f}% of step time; checkpoint {last_saved}'
    )
    signalled = stop is not None and stop.requested.is_set()
    if signalled:
        # The checkpoint holds global_step; --resume restarts the sample stream at
        # step * batch_size (per rank), right after the last sample trained on.
        log(f'stopped by {stop.name} at step {step}; to continue: {resume_command}')
    if graph.evaluator is not None and validated_at != step and not signalled:
        results = validate(sess, graph, writer, step, log)
    return step, results
