"""Fixtures for the training and evaluation tests: a tiny synthetic dataset, a tiny run."""

import pytest

from edvr.data import synthetic
from tests.train.tiny_runs import run_train, tiny_config, write_config


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Synthetic clips, GT 64x96 (LR 16x24): two training photos, one validation photo."""
    options = synthetic.SyntheticOptions(
        seed=3,
        gt_height=64,
        gt_width=96,
        train_clips_per_photo=1,
        train_frames=5,
        val_frames=4,
        train_photos=('astronaut', 'brick'),
        val_photos=('coffee',),
        object_probability=0.0,
    )
    return synthetic.ensure_dataset(
        str(tmp_path_factory.mktemp('tiny') / 'data'), options, log=lambda message: None
    )


@pytest.fixture(scope='session')
def tiny_run(tiny_data, tmp_path_factory):
    """(config path, run folder) of two training steps on ``tiny_data``, checkpoint
    model.ckpt-2 and the config.yaml edvr.train writes; read it, do not change it."""
    folder = tmp_path_factory.mktemp('run')
    config = write_config(folder / 'tiny.yaml', tiny_config(max_steps=2, checkpoint_every=2))
    run_train(config, tiny_data, folder / 'out')
    return config, str(folder / 'out')
