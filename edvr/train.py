"""Trains EDVR (TF1 graph, Session) on a dataset in the seed layout.

    python -m edvr.train --config CFG --data_dir DIR --output DIR [--max_steps N]
        [--batch_size N] [--max_minutes M] [--resume] [--device cpu|npu]
        [--intra_op_threads N] [--inter_op_threads N]

With no arguments: ``configs/edvr_tiny.yaml`` on ``data/synthetic`` (generated on first use)
into ``runs/edvr_tiny``. Options come from the config's ``train:`` and ``data:`` sections.
Each step fetches its batch from the tf.data pipeline and feeds it to the train op; the time
spent waiting for that batch is logged as the input-wait share of step time.

``--device npu`` trains on an Ascend NPU through CANN's TF adapter (``edvr.npu``: session
config, ``train.mixed_precision``, ``train.loss_scale``, HCCL data parallelism from
RANK_SIZE/RANK_ID/DEVICE_ID/RANK_TABLE_FILE); each rank trains on its own shard of the sample
stream (``train.batch_size`` is per rank), and only rank 0 writes checkpoints, summaries and
validation.

With ``TF_CONFIG`` naming several workers (``scripts/run_multiworker.sh N ...`` sets it), each
worker process trains data-parallel on TensorFlow's collective all-reduce
(``edvr.training.distributed``), with the same sharding, per-worker batch and chief-only
writes; a lost worker stops the others within ``distributed.collective_timeout`` seconds
(``--collective_timeout``) with an error naming it (exit status 4).
"""

import argparse
import glob
import math
import os
import shlex
import sys
import time

import numpy as np
import tensorflow as tf
import yaml
from tqdm import tqdm

from edvr import npu
from edvr.checkpoint import STATE_FILE, CheckpointDamagedError, newest_intact_checkpoint
from edvr.config import load_config
from edvr.data import pipeline, reds, synthetic
from edvr.evaluation import Evaluator, format_table
from edvr import precision
from edvr.model import build_edvr, center_frame_index
from edvr.session import add_thread_flags, session_config, threads_from_flags
from edvr.training import distributed, monitor
from edvr.training.checkpoints import CheckpointManager, CheckpointSaveError, checkpoint_step
from edvr.training.losses import pixel_loss
from edvr.training.optimizer import build_train_ops, fusion_warmup_active
from edvr.training.options import check_train_config
from edvr.training.stop_signals import StopSignals

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, 'configs', 'edvr_tiny.yaml')
DEFAULT_DATA = os.path.join(REPO, 'data', 'synthetic')
EXIT_CHECKPOINT = 1  # a damaged checkpoint with no intact one to resume from, a failed save
EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_WORKER_LOST = 4


class TrainingGraph:
    """The training graph: fed batches, the model, loss, train ops, monitors, validation."""

    def __init__(self, config, data_dir, val_spec, wrap_optimizer=None, compute_dtype=tf.float32):
        """compute_dtype: the model's (edvr.precision.compute_dtype); loss and optimizer are
        float32 either way."""
        model_cfg, train_cfg, data_cfg = config['model'], config['train'], config['data']
        batch, crop, frames = train_cfg['batch_size'], data_cfg['lr_crop'], model_cfg['num_frame']
        tf.compat.v1.set_random_seed(train_cfg['seed'])
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        self.lr_frames = tf.compat.v1.placeholder(tf.float32, [batch, frames, crop, crop, 3],
                                                  'lr_frames')
        self.gt = tf.compat.v1.placeholder(tf.float32, [batch, 4 * crop, 4 * crop, 3], 'gt')
        self.output, endpoints = build_edvr(self.lr_frames, model_cfg, compute_dtype=compute_dtype)
        self.loss = pixel_loss(self.output, self.gt, train_cfg['loss'],
                               train_cfg['loss_reduction'], train_cfg['charbonnier_eps'])
        self.train_ops = build_train_ops(self.loss, self.global_step, train_cfg,
                                         wrap_optimizer=wrap_optimizer)
        self.offsets, self.max_offset = monitor.offset_magnitudes(endpoints['dcn_offsets'])
        scalars = [tf.compat.v1.summary.scalar('train/loss', self.loss),
                   tf.compat.v1.summary.scalar('train/lr', self.train_ops.lr),
                   tf.compat.v1.summary.scalar('offsets/max_mean_abs', self.max_offset)]
        scalars += [tf.compat.v1.summary.scalar(f'offsets/{name}', value)
                    for name, value in self.offsets.items()]
        self.scalar_summaries = tf.compat.v1.summary.merge(scalars)
        center = center_frame_index(model_cfg)
        strip = monitor.sample_strip(self.lr_frames[:, center], self.output, self.gt)
        self.image_summary = tf.compat.v1.summary.image('train/bicubic_edvr_gt', strip)
        self.evaluator = (Evaluator(data_dir, val_spec, config,
                                    crop_border=train_cfg['val_crop_border'], reuse=True,
                                    compute_dtype=compute_dtype)
                          if val_spec is not None else None)
        self.saver = tf.compat.v1.train.Saver(max_to_keep=None)
        self.init = tf.compat.v1.global_variables_initializer()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='YAML config')
    parser.add_argument('--data_dir', default=None,
                        help=f'dataset in the seed layout (default {DEFAULT_DATA}, generated '
                             f'on first use)')
    parser.add_argument('--output', default=None,
                        help='run folder: checkpoints, TensorBoard logs, config copy '
                             '(default runs/<config name>)')
    parser.add_argument('--max_steps', type=int, help='override train.max_steps')
    parser.add_argument('--batch_size', type=int, help='override train.batch_size')
    parser.add_argument('--max_minutes', type=float,
                        help='override train.max_minutes (wall-clock limit on training steps)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from the latest checkpoint in --output')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'npu'))
    parser.add_argument('--no_progress', action='store_true', help='no tqdm bar (logs only)')
    parser.add_argument('--collective_timeout', type=float,
                        help='multi-worker (TF_CONFIG): seconds to wait for the other workers '
                             'in an all-reduce before stopping with an error naming the lost '
                             'one (default distributed.collective_timeout of the config, 60)')
    add_thread_flags(parser)
    precision.add_precision_flag(parser)
    return parser.parse_args(argv)


def prepare_config(args):
    config = load_config(args.config)
    for key in ('max_steps', 'batch_size', 'max_minutes'):
        if getattr(args, key) is not None:
            config['train'][key] = getattr(args, key)
    config['threads'] = threads_from_flags(args, config['threads'])
    if getattr(args, 'collective_timeout', None) is not None:
        config['distributed']['collective_timeout'] = args.collective_timeout
    config['train']['mixed_precision'] = precision.mixed_from_flags(args, config['train'])
    check_train_config(config, args.config)
    return config


def prepare_data(data_dir, config, log):
    """Checks (or, for the default folder, generates) the dataset; returns the two specs."""
    if data_dir is None:
        data_dir = DEFAULT_DATA
        synthetic.ensure_dataset(data_dir, log=log)
    verify = config['data']['verify_pixels']
    start = time.time()
    train_spec = reds.check_dataset(data_dir, 'train', verify_pixels=verify)
    val_spec = (reds.check_dataset(data_dir, 'val', verify_pixels=verify)
                if os.path.isfile(reds.split_file(data_dir, 'val')) else None)
    frames = sum(v.nframes for v in train_spec.videos)
    log(f'dataset {data_dir}: {len(train_spec.videos)} training clips ({frames} frames), '
        f'{len(val_spec.videos) if val_spec else 0} validation clips; checked in '
        f'{time.time() - start:.1f} s')
    return data_dir, train_spec, val_spec


def prepare_output(output, config, resume, chief=True, log=print):
    """Creates the run folder; refuses to overwrite a run unless resuming. Returns the newest
    intact checkpoint to resume from (or None), warning through ``log`` about damaged ones
    skipped. Only the ``chief`` (rank 0) creates the folder and writes the config copy; the
    other workers only read it."""
    if chief:
        os.makedirs(output, exist_ok=True)
    saved_config = os.path.join(output, 'config.yaml')
    if not resume:
        existing = sorted(glob.glob(os.path.join(output, '*.index'))) or \
            [p for p in [os.path.join(output, STATE_FILE)] if os.path.isfile(p)]
        if existing:
            raise FileExistsError(f'{output} already holds checkpoint {existing[-1]}; pass '
                                  f'--resume to continue it, or choose another --output')
    latest = newest_intact_checkpoint(output, warn=log) if resume else None
    if resume and not latest:
        raise FileNotFoundError(f'--resume: no checkpoint in {output}')
    if resume and os.path.isfile(saved_config):
        with open(saved_config) as f:
            previous = yaml.safe_load(f)
        if not isinstance(previous, dict):
            raise ValueError(f'--resume: {saved_config} holds no config mapping (got '
                             f'{type(previous).__name__}); restore it or start a new run')
        if previous.get('model') != config['model']:
            raise ValueError(f'--resume: model section of the config differs from the one the '
                             f'run in {output} was started with ({saved_config})')
    if chief:  # atomically: with several workers, the others may be reading it right now
        partial = f'{saved_config}.tmp-{os.getpid()}'
        with open(partial, 'w') as f:
            yaml.safe_dump({k: dict(v) for k, v in config.items()}, f, sort_keys=False)
        os.replace(partial, saved_config)
    return latest


def training_dataset(config, data_dir, train_spec, start_step, rank_size=1, rank_id=0):
    """The batches of this rank (of ``rank_size``) from step ``start_step`` on, as the config
    says; ``train.batch_size`` is per rank."""
    train_cfg, data_cfg = config['train'], config['data']
    return pipeline.training_dataset(
        data_dir, train_spec, num_frames=config['model']['num_frame'],
        lr_crop=data_cfg['lr_crop'], batch_size=train_cfg['batch_size'],
        seed=train_cfg['seed'], start_sample=start_step * train_cfg['batch_size'] * rank_size,
        use_flip=data_cfg['use_flip'], use_rotation=data_cfg['use_rotation'],
        use_temporal_reverse=data_cfg['use_temporal_reverse'],
        num_parallel_calls=data_cfg['num_parallel_calls'], prefetch=data_cfg['prefetch'],
        rank_size=rank_size, rank_id=rank_id)


def validate(sess, graph, writer, step, log):
    start = time.time()
    results = graph.evaluator.run(sess)
    log(f'validation at step {step} ({time.time() - start:.1f} s):\n{format_table(results)}')
    average = results['average']
    writer.add_summary(monitor.scalar_summary(
        {f'val/{method}_{m}': average[method][m] for method in average for m in average[method]}),
        step)
    return results


class _NoSummaries:
    """The summary writer of ranks other than 0: only rank 0 writes TensorBoard logs."""

    def add_summary(self, *args, **kwargs):
        pass

    def close(self):
        pass


def train(args, log=print):
    """Runs training as ``args`` say; returns (last step, final validation results or None)."""
    config = prepare_config(args)
    train_cfg = config['train']
    setup = None  # --device cpu: plain optimisers, default session
    if args.device == 'npu':  # first: without npu_bridge, stop before touching the data
        setup = npu.NpuTraining.from_env(mixed_precision=train_cfg['mixed_precision'],
                                         loss_scale=train_cfg['loss_scale'])
        log(f'npu: rank {setup.cluster.rank_id} of {setup.cluster.rank_size}, device '
            f'{setup.cluster.device_id}, precision_mode {setup.precision_mode}, loss scale '
            f'{setup.loss_scale}')
    workers = distributed.WorkerCluster.from_env()
    workers = workers if workers is not None and workers.size > 1 else None
    collectives = None
    if workers is not None:
        if setup is not None:
            raise ValueError('--device npu trains over HCCL (RANK_SIZE, RANK_TABLE_FILE); unset '
                             'TF_CONFIG, which is for multi-worker training on CPU or GPU')
        collectives = distributed.Collectives(
            workers, config['distributed']['collective_timeout'],
            config['distributed']['startup_timeout'],
            average=train_cfg['loss_reduction'] == 'mean')
        log(f'multi-worker: {workers.describe(workers.index)} of {workers.size}'
            f'{" (chief)" if workers.chief else ""}; collective timeout '
            f'{collectives.timeout:g} s')
    chief = (setup is None or setup.cluster.rank_id == 0) and (workers is None or workers.chief)
    data_dir, train_spec, val_spec = prepare_data(args.data_dir, config, log)
    output = args.output or os.path.join(
        REPO, 'runs', os.path.splitext(os.path.basename(args.config))[0])
    latest = prepare_output(output, config, args.resume, chief, log=log)
    start_step = checkpoint_step(latest) if latest else 0

    graph_obj = tf.Graph()
    # Multi-worker: the whole graph on this worker's task; every worker validates (only the
    # chief writes the results), so none waits in an all-reduce while the chief validates.
    with graph_obj.as_default(), tf.device(workers.device if workers else None):
        compute_dtype = precision.compute_dtype(train_cfg['mixed_precision'], args.device)
        if workers is not None and compute_dtype != tf.float32:
            # In a session on a tf.distribute.Server, grappler fuses the bfloat16 convolutions
            # into TF's own _FusedConv2D, which has no bfloat16 kernel (oneDNN's does).
            log('multi-worker: bfloat16 is not supported on a distributed server session; '
                'computing in float32')
            compute_dtype = tf.float32
        log(f'precision: {"mixed" if train_cfg["mixed_precision"] else "fp32"}, model computes '
            f'in {compute_dtype.name}')
        validates = train_cfg['validate_every'] and (chief or workers is not None)
        graph = TrainingGraph(config, data_dir, val_spec if validates else None,
                              wrap_optimizer=(setup.wrap_optimizer if setup else
                                              collectives.wrap_optimizer if collectives else None),
                              compute_dtype=compute_dtype)
        broadcast = (setup.broadcast_variables() if setup else
                     collectives.broadcast_variables() if collectives else None)
        agreement = collectives.step_agreement(graph.loss) if collectives else None
        # Each rank reads its own shard of the one sample stream; batch_size is per rank.
        cluster = (setup.cluster if setup else
                   npu.ClusterInfo(rank_size=workers.size, rank_id=workers.index) if workers
                   else npu.ClusterInfo())
        dataset = training_dataset(config, data_dir, train_spec, start_step,
                                   cluster.rank_size, cluster.rank_id)
        next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        writer = (tf.compat.v1.summary.FileWriter(os.path.join(output, 'logs'), graph_obj)
                  if chief else _NoSummaries())
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
    with graph_obj.as_default(), \
            tf.compat.v1.Session(target, graph=graph_obj, config=config_proto) as sess:
        try:
            if latest:
                graph.saver.restore(sess, latest)
                restored = int(sess.run(graph.global_step))
                if restored != start_step:
                    raise ValueError(f'{latest}: global_step is {restored}, the name says '
                                     f'{start_step}')
                log(f'resumed from {latest} at step {start_step}')
            else:
                sess.run(graph.init)
            if workers is not None:
                distributed.wait_for_workers(workers, collectives.startup_timeout)
            if broadcast is not None:
                sess.run(broadcast)  # every rank starts from rank 0's variables
            if workers is not None:
                distributed.check_start_step(workers, int(sess.run(graph.global_step)),
                                             start_step, output)
            with StopSignals(log) as stop:
                return run_loop(sess, graph, next_batch, checkpoints, writer, config, start_step,
                                log, progress=not args.no_progress, chief=chief, stop=stop,
                                last_saved=latest,
                                resume_command=resume_command(args, data_dir, output),
                                agreement=agreement)
        except distributed.LOST_PEER_ERRORS as error:
            if workers is None:
                raise
            lost = distributed.lost_worker_error(workers, error, collectives.timeout)
            if chief:  # a failed all-reduce applies no update: the variables are a whole step
                step, saved = int(sess.run(graph.global_step)), checkpoints.latest()
                if step > 0 and (saved is None or checkpoint_step(saved) != step):
                    log(f'saved {checkpoints.save(sess, step)} before stopping')
            distributed.exit_if_stuck(lost, EXIT_WORKER_LOST)
            raise lost from error
        finally:
            writer.close()


def resume_command(args, data_dir, output):
    """The command line that continues this run, with the same overrides (the batch size
    decides where the input stream restarts)."""
    parts = ['python', '-m', 'edvr.train', '--config', args.config, '--data_dir', data_dir,
             '--output', output, '--resume']
    for flag in ('max_steps', 'batch_size', 'max_minutes', 'intra_op_threads',
                 'inter_op_threads', 'precision', 'collective_timeout'):
        if getattr(args, flag, None) is not None:
            parts += [f'--{flag}', str(getattr(args, flag))]
    if args.device != 'cpu':
        parts += ['--device', args.device]
    return ' '.join(shlex.quote(part) for part in parts)


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
                f'checkpoint_every') from e
        log(f'warning: {e}; training goes on and saves again at the next checkpoint '
            f'(train.keep_going_on_save_error)')
        return None


def run_loop(sess, graph, next_batch, checkpoints, writer, config, step, log, progress=True,
             chief=True, stop=None, last_saved=None, resume_command=None, agreement=None):
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
    bar = tqdm(total=max_steps, initial=step, desc='train', unit='step', dynamic_ncols=True,
               disable=not progress, smoothing=0.1)
    try:
        while step < max_steps and not time_up:
            start = time.perf_counter()
            batch = sess.run(next_batch)
            fetched = time.perf_counter()
            warmup = fusion_warmup_active(step, tsa_iter)
            fetches = {'op': graph.train_ops.fusion_only if warmup else graph.train_ops.full,
                       'loss': graph.loss, 'lr': graph.train_ops.lr}
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
                    f'train.lr, check the data, or resume from it with --resume')
            if warmup and not fusion_warmup_active(step, tsa_iter):
                log(f'step {step}: fusion warm-up over, training all parameters')
            bar.update(1)
            bar.set_postfix(loss=f'{got["loss"]:.4g}', lr=f'{got["lr"]:.3g}',
                            wait=f'{100 * wait_time / step_time:.1f}%', refresh=False)
            if summary_step:
                writer.add_summary(got['scalars'], step)
                writer.add_summary(monitor.scalar_summary(
                    {'train/input_wait_share': wait_time / step_time}), step)
                if got['max_offset'] > train_cfg['offset_warning_threshold']:
                    bar.write(f'warning: step {step}: mean |DCN offset| is '
                              f'{got["max_offset"]:.1f}, above '
                              f'train.offset_warning_threshold '
                              f'({train_cfg["offset_warning_threshold"]}); training may be '
                              f'diverging')
            if 'images' in got:
                writer.add_summary(got['images'], step)
            if chief and step % train_cfg['checkpoint_every'] == 0:
                last_saved = save_checkpoint(checkpoints, sess, step, keep_going,
                                             log) or last_saved
            if train_cfg['validate_every'] and step % train_cfg['validate_every'] == 0 \
                    and graph.evaluator is not None:
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
    log(f'stopped at step {step} after {step_time / 60:.1f} min of training steps; waiting '
        f'on input took {share:.1f}% of step time; checkpoint {last_saved}')
    signalled = stop is not None and stop.requested.is_set()
    if signalled:
        # The checkpoint holds global_step; --resume restarts the sample stream at
        # step * batch_size (per rank), right after the last sample trained on.
        log(f'stopped by {stop.name} at step {step}; to continue: {resume_command}')
    if graph.evaluator is not None and validated_at != step and not signalled:
        results = validate(sess, graph, writer, step, log)
    return step, results


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args, log=lambda message: tqdm.write(str(message)))
    except FloatingPointError as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_NONFINITE
    except (CheckpointDamagedError, CheckpointSaveError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_CHECKPOINT
    except distributed.WorkerLostError as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_WORKER_LOST
    except (ValueError, OSError, npu.NpuUnavailableError) as e:  # bad config, data, folders
        print(f'error: {e}', file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == '__main__':
    status = main()
    if status == EXIT_WORKER_LOST:  # nothing left to save; do not wait on the lost peer
        distributed.exit_at_once(status)
    sys.exit(status)
