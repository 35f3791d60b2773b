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

The libraries: ``edvr.training.graph`` (the graph), ``edvr.training.loop`` (the run and its
loop); this module holds the flags, their overrides of the config and the run folder. Exit
codes: ``edvr.cli``.
"""

import glob
import os
import shlex
import sys

import yaml
from tqdm import tqdm

from edvr import cli, precision
from edvr.checkpoint import STATE_FILE, newest_intact_checkpoint
from edvr.config import load_config
from edvr.data import synthetic
from edvr.session import threads_from_flags
from edvr.training import distributed, loop
from edvr.training.options import check_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, 'configs', 'edvr_tiny.yaml')
DEFAULT_DATA = os.path.join(REPO, 'data', 'synthetic')


def make_parser():
    parser = cli.tool_parser(
        'train', __doc__.split('\n\n')[0], 'YAML config', config_default=DEFAULT_CONFIG
    )
    parser.add_argument(
        '--data_dir',
        default=None,
        help=f'dataset in the seed layout (default {DEFAULT_DATA}, generated on first use)',
    )
    parser.add_argument(
        '--output',
        default=None,
        help='run folder: checkpoints, TensorBoard logs, config copy (default runs/<config name>)',
    )
    parser.add_argument('--max_steps', type=int, help='override train.max_steps')
    parser.add_argument('--batch_size', type=int, help='override train.batch_size')
    parser.add_argument(
        '--max_minutes',
        type=float,
        help='override train.max_minutes (wall-clock limit on training steps)',
    )
    parser.add_argument(
        '--resume', action='store_true', help='continue from the latest checkpoint in --output'
    )
    parser.add_argument('--device', default='cpu', choices=('cpu', 'npu'))
    parser.add_argument('--no_progress', action='store_true', help='no tqdm bar (logs only)')
    parser.add_argument(
        '--collective_timeout',
        type=float,
        help='multi-worker (TF_CONFIG): seconds to wait for the other workers '
        'in an all-reduce before stopping with an error naming the lost '
        'one (default distributed.collective_timeout of the config, 60)',
    )
    precision.add_precision_flag(parser)
    return parser


def parse_args(argv):
    return make_parser().parse_args(argv)


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


def prepare_output(output, config, resume, chief=True, log=print):
    """Creates the run folder; refuses to overwrite a run unless resuming. Returns the newest
    intact checkpoint to resume from (or None), warning through ``log`` about damaged ones
    skipped. Only the ``chief`` (rank 0) creates the folder and writes the config copy; the
    other workers only read it."""
    if chief:
        os.makedirs(output, exist_ok=True)
    saved_config = os.path.join(output, 'config.yaml')
    if not resume:
        existing = sorted(glob.glob(os.path.join(output, '*.index'))) or [
            p for p in [os.path.join(output, STATE_FILE)] if os.path.isfile(p)
        ]
        if existing:
            raise FileExistsError(
                f'{output} already holds checkpoint {existing[-1]}; pass '
                f'--resume to continue it, or choose another --output'
            )
    latest = newest_intact_checkpoint(output, warn=log) if resume else None
    if resume and not latest:
        raise FileNotFoundError(f'--resume: no checkpoint in {output}')
    if resume and os.path.isfile(saved_config):
        with open(saved_config) as f:
            previous = yaml.safe_load(f)
        if not isinstance(previous, dict):
            raise ValueError(
                f'--resume: {saved_config} holds no config mapping (got '
                f'{type(previous).__name__}); restore it or start a new run'
            )
        if previous.get('model') != config['model']:
            raise ValueError(
                f'--resume: model section of the config differs from the one the '
                f'run in {output} was started with ({saved_config})'
            )
    if chief:  # atomically: with several workers, the others may be reading it right now
        partial = f'{saved_config}.tmp-{os.getpid()}'
        with open(partial, 'w') as f:
            yaml.safe_dump({k: dict(v) for k, v in config.items()}, f, sort_keys=False)
        os.replace(partial, saved_config)
    return latest


def train(args, log=print):
    """Runs training as ``args`` say; returns (last step, final validation results or None)."""
    config = prepare_config(args)
    cluster = loop.start_cluster(config, args.device, log)  # first: stop early without an NPU
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = DEFAULT_DATA
        synthetic.ensure_dataset(data_dir, log=log)
    train_spec, val_spec = loop.check_data(data_dir, config, log)
    output = args.output or os.path.join(
        REPO, 'runs', os.path.splitext(os.path.basename(args.config))[0]
    )
    latest = prepare_output(output, config, args.resume, cluster.chief, log=log)
    return loop.run_training(
        config,
        cluster,
        data_dir,
        train_spec,
        val_spec,
        output,
        latest,
        device=args.device,
        progress=not args.no_progress,
        resume_command=resume_command(args, data_dir, output),
        log=log,
    )


def resume_command(args, data_dir, output):
    """The command line that continues this run, with the same overrides (the batch size
    decides where the input stream restarts)."""
    parts = [
        'python',
        '-m',
        'edvr.train',
        '--config',
        args.config,
        '--data_dir',
        data_dir,
        '--output',
        output,
        '--resume',
    ]
    for flag in (
        'max_steps',
        'batch_size',
        'max_minutes',
        'intra_op_threads',
        'inter_op_threads',
        'precision',
        'collective_timeout',
    ):
        if getattr(args, flag, None) is not None:
            parts += [f'--{flag}', str(getattr(args, flag))]
    if args.device != 'cpu':
        parts += ['--device', args.device]
    return ' '.join(shlex.quote(part) for part in parts)


def main(argv=None):
    def body(args):
        train(args, log=lambda message: tqdm.write(str(message)))

    return cli.main('train', make_parser(), body, argv)


if __name__ == '__main__':
    status = main()
    if status == cli.EXIT_WORKER_LOST:  # nothing left to save; do not wait on the lost peer
        distributed.exit_at_once(status)
    sys.exit(status)
