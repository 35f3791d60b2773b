"""edvr.infer end to end on a tiny clip; temporal padding, spatial padding, tiling, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from edvr import cli, infer, inference
from edvr.checkpoint import assign_weights
from edvr.config import parse_config
from edvr.inference import InferenceError
from edvr.model import build_edvr
from tests.model.model_testing import random_checkpoint

REPO = os.path.join(os.path.dirname(__file__), '..', '..')
TINY = dict(
    num_feat=8,
    num_frame=3,
    deformable_groups=1,
    num_extract_block=1,
    num_reconstruct_block=1,
    num_upsample_feat=8,
)
CFG = parse_config({'model': TINY})['model']


def write_config(path, model):
    lines = ['model:'] + [
        f'  {k}: {("null" if v is None else str(v).lower())}' for k, v in model.items()
    ]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def write_clip(folder, count, height, width, seed=0, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = names or [f'{i:08d}.png' for i in range(count)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            folder / name
        )
    return names


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp('ckpt')
    values = random_checkpoint(CFG, folder / 'model', seed=3, offset_scale=2.0)
    return str(folder / 'model'), values


# --- temporal padding (indices derived by hand from BasicSR's generate_frame_indices) ------


@pytest.mark.parametrize(
    'padding, expected',
    [
        # a 7-frame clip, 5-frame windows; rows are the windows of centres 0, 1, 5, 6
        ('replicate', [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [3, 4, 5, 6, 6], [4, 5, 6, 6, 6]]),
        ('reflection', [[2, 1, 0, 1, 2], [1, 0, 1, 2, 3], [3, 4, 5, 6, 5], [4, 5, 6, 5, 4]]),
        ('reflection_circle', [[4, 3, 0, 1, 2], [4, 0, 1, 2, 3], [3, 4, 5, 6, 2], [4, 5, 6, 3, 2]]),
    ],
)
def test_temporal_padding(padding, expected):
    windows = inference.clip_windows(7, 5, padding)
    assert [windows[i] for i in (0, 1, 5, 6)] == expected
    assert windows[3] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    'padding, frames, minimum', [('reflection_circle', 4, 5), ('reflection', 2, 3)]
)
def test_too_few_frames(padding, frames, minimum):
    with pytest.raises(
        InferenceError,
        match=rf'the clip has {frames} frames; --padding {padding} '
        rf'with a 5-frame model needs at least {minimum}',
    ):
        inference.clip_windows(frames, 5, padding)


def test_replicate_takes_a_single_frame():
    assert inference.clip_windows(1, 5, 'replicate') == [[0, 0, 0, 0, 0]]


# --- spatial padding and tiling ------------------------------------------------------------


def test_pad_to_multiple_mirrors_bottom_right():
    frames = np.arange(2 * 5 * 6 * 1, dtype=np.float32).reshape(2, 5, 6, 1)
    padded, size = inference.pad_to_multiple(frames, 4)
    assert size == (5, 6) and padded.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(padded[:, :5, :6], frames)
    np.testing.assert_array_equal(padded[:, 5, :6], frames[:, 3])  # reflect: row 5 mirrors row 3
    np.testing.assert_array_equal(padded[:, :5, 7], frames[:, :, 3])


@pytest.mark.parametrize('height, width', [(5, 6), (7, 4), (4, 9), (8, 8)])
def test_evaluate_pads_as_infer(height, width):
    """The validation pads in the graph (edvr.evaluate, edvr.train) as edvr.infer in NumPy."""
    frames = np.random.RandomState(0).rand(2, 3, height, width, 3).astype(np.float32)
    expected, size = inference.pad_to_multiple(frames, 4)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        padded, h, w = sess.run(inference.pad_to_multiple_graph(tf.constant(frames), 4))
    assert (h, w) == size == (height, width)
    np.testing.assert_array_equal(padded, expected)


def test_tile_spans_cover_once_and_align():
    spans = inference.tile_spans(40, 16, 6, 4)
    assert [(c0, c1) for _, _, c0, c1 in spans] == [(0, 16), (16, 32), (32, 40)]
    assert [(r0, r1) for r0, r1, _, _ in spans] == [(0, 24), (8, 40), (24, 40)]


def test_output_matches_the_model_and_crops_padding(checkpoint, tmp_path):
    _, values = checkpoint
    names = write_clip(tmp_path / 'in', 4, 10, 13)
    inference.restore_clip(
        CFG, checkpoint[0], str(tmp_path / 'in'), str(tmp_path / 'out'), progress=False
    )
    assert sorted(os.listdir(tmp_path / 'out')) == names
    out = np.asarray(Image.open(tmp_path / 'out' / names[0]))
    assert out.shape == (40, 52, 3)
    # Oracle: the model on the hand-padded window of frame 0 (reflection_circle: [2, 0, 1]).
    clip = np.stack([np.asarray(Image.open(tmp_path / 'in' / n), np.float32) / 255 for n in names])
    window = np.pad(clip[[2, 0, 1]], ((0, 0), (0, 2), (0, 3), (0, 0)), mode='reflect')
    with tf.Graph().as_default():
        frames = tf.compat.v1.placeholder(tf.float32, (1, 3, 12, 16, 3))
        output, _ = build_edvr(frames, CFG)
        with tf.compat.v1.Session() as sess:
            assign_weights(sess, values)
            expected = sess.run(output, {frames: window[None]})[0, :40, :52]
    expected = np.round(np.clip(expected, 0, 1) * 255)
    assert np.abs(out.astype(np.float32) - expected).max() <= 1  # PNG rounding


def test_tiling_equals_untiled(checkpoint):
    restorer = inference.Restorer(CFG, checkpoint[0])
    try:
        window = np.random.default_rng(5).uniform(0, 1, (3, 36, 236, 3)).astype(np.float32)
        whole = restorer(window)
        overlap = inference.receptive_radius(CFG)
        tiled = restorer(window, tile=32, overlap=overlap)
        assert len(inference.tile_spans(236, 32, overlap, 4)) == 8
        assert np.abs(tiled - whole).max() < 1e-4
        # without overlap the seams show: the check above is not vacuous
        assert np.abs(restorer(window, tile=32, overlap=0) - whole).max() > 1e-3
    finally:
        restorer.close()


# --- the CLI and its errors ---------------------------------------------------------------


def test_cli_end_to_end_with_a_checkpoint_directory(checkpoint, tmp_path):
    names = write_clip(tmp_path / 'in', 3, 8, 8)
    config = write_config(tmp_path / 'tiny.yaml', CFG)
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'edvr.infer',
            '--config',
            config,
            '--checkpoint',
            os.path.dirname(checkpoint[0]),
            '--input',
            str(tmp_path / 'in'),
            '--output',
            str(tmp_path / 'out'),
            '--padding',
            'replicate',
            '--tile',
            '8',
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / 'out')) == names
    assert 'edvr.infer' in result.stderr and '3/3' in result.stderr  # the progress bar
    assert Image.open(tmp_path / 'out' / names[0]).size == (32, 32)


def run_cli(tmp_path, checkpoint, capsys, config=None, extra=()):
    config = config or write_config(tmp_path / 'tiny.yaml', CFG)
    code = infer.main(
        [
            '--config',
            config,
            '--checkpoint',
            checkpoint,
            '--input',
            str(tmp_path / 'in'),
            '--output',
            str(tmp_path / 'out'),
            *extra,
        ]
    )
    return code, capsys.readouterr().err


def test_empty_folder(checkpoint, tmp_path, capsys):
    (tmp_path / 'in').mkdir()
    code, err = run_cli(tmp_path, checkpoint[0], capsys)
    assert code == cli.EXIT_USAGE and 'no PNG frames found (the folder is empty)' in err


def test_non_image_files(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 3, 8, 8)
    (tmp_path / 'in' / 'notes.txt').write_text('hello')
    code, err = run_cli(tmp_path, checkpoint[0], capsys)
    assert (
        code == cli.EXIT_USAGE and 'expected only PNG frames, found other files: notes.txt' in err
    )


def test_broken_png(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 3, 8, 8)
    (tmp_path / 'in' / 'zz.png').write_bytes(b'not a png')
    code, err = run_cli(tmp_path, checkpoint[0], capsys)
    assert code == cli.EXIT_USAGE and 'zz.png: cannot read as PNG' in err


def test_mixed_sizes(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 2, 8, 8)
    write_clip(tmp_path / 'in', 1, 8, 12, names=['00000009.png'])
    code, err = run_cli(tmp_path, checkpoint[0], capsys)
    assert (
        code == cli.EXIT_USAGE
        and '00000009.png: frame size 12x8 differs from 00000000.png (8x8)' in err
    )


def test_too_few_frames_cli(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 2, 8, 8)
    code, err = run_cli(tmp_path, checkpoint[0], capsys)
    assert code == cli.EXIT_USAGE and 'the clip has 2 frames; --padding reflection_circle' in err


def test_checkpoint_of_another_config(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 3, 8, 8)
    other = write_config(tmp_path / 'other.yaml', dict(CFG, num_feat=16))
    code, err = run_cli(tmp_path, checkpoint[0], capsys, config=other)
    assert (
        code == cli.EXIT_CHECKPOINT
        and 'does not fit the config' in err
        and 'shape mismatches' in err
    )


def test_missing_checkpoint(tmp_path, capsys):
    write_clip(tmp_path / 'in', 3, 8, 8)
    (tmp_path / 'empty').mkdir()
    code, err = run_cli(tmp_path, str(tmp_path / 'empty'), capsys)
    assert code == cli.EXIT_CHECKPOINT and 'directory holds no checkpoint' in err


def test_tile_must_fit_the_model(checkpoint, tmp_path, capsys):
    write_clip(tmp_path / 'in', 3, 8, 8)
    code, err = run_cli(tmp_path, checkpoint[0], capsys, extra=['--tile', '6'])
    assert code == cli.EXIT_USAGE and '--tile must be a positive multiple of 4, got 6' in err
