"""Regrouping an original REDS download into the seed layout."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from edvr.data import reds, regroup_reds


def write_clip(folder, nframes, shape, tag):
    os.makedirs(folder)
    for i in range(nframes):
        pixels = np.full(shape + (3,), tag, np.uint8)
        pixels[0, 0, 0] = i  # first pixel: frame number, to follow frames through the move
        Image.fromarray(pixels).save(os.path.join(folder, '%08d.png' % i))


def fake_reds(
    src,
    train_clips=('000', '001', '011', '015', '020'),
    val_clips=('000', '001'),
    nframes=3,
    nested=True,
):
    """A REDS-shaped tree: GT 8x12, LR 2x3; pixel value 2*clip(+1 for LR), frame in [0,0,0]."""
    for split, clips, offset in (('train', train_clips, 0), ('val', val_clips, 100)):
        base = os.path.join(src, split) if nested else src
        for clip in clips:
            tag = (int(clip) + offset) % 120 * 2
            write_clip(os.path.join(base, f'{split}_sharp', clip), nframes, (8, 12), tag)
            write_clip(
                os.path.join(base, f'{split}_sharp_bicubic', 'X4', clip), nframes, (2, 3), tag + 1
            )


@pytest.mark.parametrize('mode', ['move', 'copy', 'symlink'])
def test_regroup_layout_and_splits(tmp_path, mode):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    fake_reds(src)
    regroup_reds.main(['--src', src, '--dst', dst, '--mode', mode])
    with open(os.path.join(dst, 'sets', 'val.json')) as f:
        val = json.load(f)
    with open(os.path.join(dst, 'sets', 'train.json')) as f:
        train = json.load(f)
    assert [v['name'] for v in val['videos']] == ['000', '011', '015', '020']
    assert [v['name'] for v in train['videos']] == ['001', '240', '241']
    assert train['videos'][1] == {
        'name': '240',
        'gt_shape': [8, 12],
        'x4_shape': [2, 3],
        'nframes': 3,
    }
    assert (val['prefix'], val['gt_folder'], val['x4_folder']) == (False, 'truth', 'blur4')
    # Official validation clip 001 became 241: its pixels carry tag (1 + 100) * 2.
    gt = np.asarray(Image.open(os.path.join(dst, 'images', '241', 'truth', '00000002.png')))
    lr = np.asarray(Image.open(os.path.join(dst, 'images', '241', 'blur4', '00000002.png')))
    assert gt[0, 0, 0] == 2 and gt[1, 1, 1] == 202 and lr[1, 1, 1] == 203
    moved = not os.path.exists(os.path.join(src, 'val', 'val_sharp', '001'))
    assert moved == (mode == 'move')
    for split in reds.SPLITS:
        reds.check_dataset(dst, split, verify_pixels=True)


def test_flat_source_without_official_val(tmp_path, capsys):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    fake_reds(src, val_clips=(), nested=False)  # writes no val_sharp folders at all
    assert sorted(os.listdir(src)) == ['train_sharp', 'train_sharp_bicubic']
    train, val = regroup_reds.regroup(src, dst)
    assert [v.name for v in train.videos] == ['001']
    assert 'training uses clips 000-239 only' in capsys.readouterr().out


def test_errors_leave_the_source_untouched(tmp_path):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    fake_reds(src)
    missing = os.path.join(src, 'val', 'val_sharp_bicubic', 'X4', '001', '00000001.png')
    os.remove(missing)
    with pytest.raises(reds.DatasetError, match=f'{missing}: missing frame'):
        regroup_reds.regroup(src, dst)
    assert not os.path.exists(dst)
    os.remove(os.path.join(src, 'val', 'val_sharp_bicubic', 'X4', '001', '00000002.png'))
    lr_folder = os.path.join(src, 'val', 'val_sharp_bicubic', 'X4', '001')
    with pytest.raises(reds.DatasetError, match=f'{lr_folder}: 1 frames, but .* has 3'):
        regroup_reds.regroup(src, dst)
    empty = str(tmp_path / 'empty')
    os.makedirs(empty)
    with pytest.raises(
        reds.DatasetError, match=f'{os.path.join(empty, "train", "train_sharp")}: folder not found'
    ):
        regroup_reds.regroup(empty, dst)


def test_missing_reds4_clip(tmp_path):
    src = str(tmp_path / 'src')
    fake_reds(src, train_clips=('000', '001'))
    with pytest.raises(
        reds.DatasetError,
        match=r"validation clips \['011', '015', '020'\] "
        r"not found",
    ):
        regroup_reds.regroup(src, str(tmp_path / 'dst'))
