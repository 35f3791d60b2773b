"""Helpers for the training and evaluation tests: a very small EDVR config and runs."""

import yaml

TINY_MODEL = dict(
    num_feat=8,
    num_frame=3,
    deformable_groups=1,
    num_extract_block=1,
    num_reconstruct_block=1,
    num_upsample_feat=8,
)


def tiny_config(**train):
    """A config mapping for a very small EDVR and short runs (override ``train`` keys)."""
    train_section = dict(
        batch_size=2,
        max_steps=6,
        lr=1e-3,
        scheduler_periods=[100],
        restart_weights=[1],
        eta_min=0.0,
        tsa_iter=0,
        log_every=2,
        image_summary_every=4,
        checkpoint_every=2,
        max_to_keep=5,
        validate_every=0,
        seed=5,
    )
    train_section.update(train)
    return {
        'model': dict(TINY_MODEL),
        'train': train_section,
        'data': {'lr_crop': 16, 'num_parallel_calls': 2, 'prefetch': 2},
    }


def write_config(path, mapping):
    with open(path, 'w') as f:
        yaml.safe_dump(mapping, f)
    return str(path)


def train_argv(config_path, data_dir, output, *extra):
    """``edvr.train``'s arguments for a quiet run of ``config_path`` on ``data_dir`` into
    ``output``, then ``extra``."""
    quiet = ['--config', str(config_path), '--data_dir', str(data_dir), '--output', str(output)]
    return quiet + ['--no_progress'] + list(extra)


def run_train(config_path, data_dir, output, *extra, log=None):
    """``edvr.train.train`` in this process on ``config_path``, quiet unless ``log`` is given;
    returns what it returns (last step, final validation results or None)."""
    from edvr import train as train_module

    args = train_module.parse_args(train_argv(config_path, data_dir, output, *extra))
    return train_module.train(args, log=log or (lambda message: None))
