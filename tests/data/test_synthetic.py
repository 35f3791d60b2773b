"""The synthetic dataset: layout, camera motion, unseen validation photos, determinism, reuse."""

import filecmp
import os

import numpy as np
import pytest
from PIL import Image
from skimage.registration import phase_cross_correlation

from edvr.data import reds, synthetic

SMALL = dict(
    gt_height=96,
    gt_width=128,
    train_clips_per_photo=1,
    train_frames=5,
    val_frames=5,
    train_photos=('astronaut', 'brick'),
    val_photos=('coffee',),
    object_probability=0.0,
)


def read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope='module')
def small_dataset(tmp_path_factory):
    return synthetic.ensure_dataset(
        str(tmp_path_factory.mktemp('syn') / 'data'), synthetic.SyntheticOptions(seed=1, **SMALL)
    )


def test_layout_and_splits(small_dataset):
    train = reds.check_dataset(small_dataset, 'train', verify_pixels=True)
    val = reds.check_dataset(small_dataset, 'val', verify_pixels=True)
    assert [v.name for v in train.videos] == ['000', '001']
    assert [v.name for v in val.videos] == ['002']
    assert val.videos[0] == reds.VideoEntry('002', (96, 128), (24, 32), 5)


def test_lr_is_bicubic_downscale_of_gt(small_dataset):
    gt = read(os.path.join(small_dataset, 'images', '000', 'truth', '00000003.png'))
    lr = read(os.path.join(small_dataset, 'images', '000', 'blur4', '00000003.png'))
    # Independent oracle: the mean of each 4x4 block (a box filter); bicubic is close to it.
    box = gt.reshape(24, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(lr.astype(float) - box).mean() < 4.0
    assert np.abs(lr.astype(float) - gt[::4, ::4]).mean() > np.abs(lr.astype(float) - box).mean()


def test_frames_move_by_subpixel_camera_steps(small_dataset):
    frames = [
        read(os.path.join(small_dataset, 'images', '002', 'truth', '%08d.png' % i)).mean(axis=-1)
        for i in range(5)
    ]
    shifts = [
        phase_cross_correlation(a, b, upsample_factor=20)[0] for a, b in zip(frames, frames[1:])
    ]
    magnitudes = [float(np.hypot(*s)) for s in shifts]
    assert all(0.05 < m < 4.0 for m in magnitudes), magnitudes
    assert any(abs(c - round(c)) > 0.04 for s in shifts for c in s), 'only whole-pixel steps'


def test_deterministic_for_a_seed(tmp_path, small_dataset):
    again = synthetic.ensure_dataset(
        str(tmp_path / 'again'), synthetic.SyntheticOptions(seed=1, **SMALL)
    )
    other = synthetic.ensure_dataset(
        str(tmp_path / 'other'), synthetic.SyntheticOptions(seed=2, **SMALL)
    )
    name = os.path.join('images', '001', 'truth', '00000004.png')
    assert filecmp.cmp(os.path.join(small_dataset, name), os.path.join(again, name), shallow=False)
    assert not np.array_equal(
        read(os.path.join(small_dataset, name)), read(os.path.join(other, name))
    )


def test_reuses_a_valid_dataset(small_dataset):
    messages = []
    stamp = os.path.getmtime(os.path.join(small_dataset, 'sets', 'train.json'))
    synthetic.ensure_dataset(
        small_dataset, synthetic.SyntheticOptions(seed=1, **SMALL), log=messages.append
    )
    assert messages == [f'{small_dataset} already holds a valid dataset; reusing it']
    assert os.path.getmtime(os.path.join(small_dataset, 'sets', 'train.json')) == stamp


def test_refuses_foreign_folder_and_shared_photos(tmp_path):
    (tmp_path / 'busy').mkdir()
    (tmp_path / 'busy' / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='is not empty and holds no valid dataset'):
        synthetic.ensure_dataset(str(tmp_path / 'busy'), synthetic.SyntheticOptions(**SMALL))
    with pytest.raises(ValueError, match=r"photographs \['coffee'\] are in both"):
        synthetic.SyntheticOptions(**dict(SMALL, train_photos=('coffee',)))


def test_default_photos_are_disjoint_and_frames_fit_every_crop():
    assert not set(synthetic.TRAIN_PHOTOS) & set(synthetic.VAL_PHOTOS)
    defaults = synthetic.SyntheticOptions()
    assert min(defaults.gt_height, defaults.gt_width) >= 256  # GT crop of LR 64


def test_command_line(tmp_path, capsys):
    argv = [
        '--output',
        str(tmp_path / 'cli'),
        '--gt_height',
        '64',
        '--gt_width',
        '64',
        '--train_frames',
        '2',
        '--val_frames',
        '2',
        '--train_clips_per_photo',
        '1',
    ]
    assert synthetic.main(argv) == 0
    assert 'wrote 10 training and 3 validation clips (64x64 GT, x4 LR)' in capsys.readouterr().out
    assert len(reds.check_dataset(str(tmp_path / 'cli'), 'train').videos) == 10
    assert synthetic.main(argv) == 0
    assert 'already holds a valid dataset; reusing it' in capsys.readouterr().out
