"""Fixtures for the training and evaluation tests: a tiny synthetic dataset."""

import pytest

from edvr.data import synthetic


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Synthetic clips, GT 64x96 (LR 16x24): two training photos, one validation photo."""
    options = synthetic.SyntheticOptions(
        seed=3, gt_height=64, gt_width=96, train_clips_per_photo=1, train_frames=5,
        val_frames=4, train_photos=('astronaut', 'brick'), val_photos=('coffee',),
        object_probability=0.0)
    return synthetic.ensure_dataset(str(tmp_path_factory.mktemp('tiny') / 'data'), options,
                                    log=lambda message: None)
