"""The tf.data pipelines: shapes, one shared transform per sample, windows, determinism.

The mini dataset's pixels encode (row, column, frame) (coordinate_frames.coordinate_frame),
so the oracle can recover from an output which crop, which of the 8 flips/rotations and which
frames were taken, independently for every LR frame and for the GT, and demand that they agree.
"""

import itertools

import numpy as np
import pytest

from tests.data.coordinate_frames import coordinate_frame
from edvr.data import pipeline, reds

DIHEDRAL = [(h, v, t) for h, v, t in itertools.product((False, True), repeat=3)]


def apply_dihedral(image, transform):
    """BasicSR's augment on one [h, w, c] image: hflip, vflip, then transpose."""
    hflip, vflip, transpose = transform
    if hflip:
        image = image[:, ::-1]
    if vflip:
        image = image[::-1]
    if transpose:
        image = image.transpose(1, 0, 2)
    return image


def identify(output, frame_index, crop, scale):
    """Which (top, left, transform) maps the original frame to ``output`` [c, c, 3] (uint8);
    None if no crop and dihedral transform does. ``scale`` is 1 for LR, 4 for GT."""
    size = output.shape[0]
    rows, cols = output[..., 0].astype(int), output[..., 1].astype(int)
    top, left = rows.min(), cols.min()
    original = coordinate_frame(top + size, left + size, frame_index)[top:, left:]
    for transform in DIHEDRAL:
        if np.array_equal(apply_dihedral(original, transform), output):
            return top // scale, left // scale, transform
    return None


def take(dataset, count):
    iterator = iter(dataset)
    return [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(count)]


def to_uint8(x):
    return np.rint(x * 255).astype(np.uint8)


def test_training_shapes_and_range(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    batch = take(
        pipeline.training_dataset(mini_dataset, spec, num_frames=5, lr_crop=16, batch_size=3), 1
    )[0]
    assert batch['lr'].shape == (3, 5, 16, 16, 3) and batch['lr'].dtype == np.float32
    assert batch['gt'].shape == (3, 64, 64, 3) and batch['gt'].dtype == np.float32
    assert 0.0 <= batch['lr'].min() and batch['lr'].max() <= 1.0


@pytest.mark.parametrize('temporal_reverse', [False, True])
def test_every_frame_and_gt_share_crop_and_transform(mini_dataset, temporal_reverse):
    spec = reds.read_split(mini_dataset, 'train')
    dataset = pipeline.training_dataset(
        mini_dataset,
        spec,
        num_frames=5,
        lr_crop=8,
        batch_size=4,
        seed=3,
        use_temporal_reverse=temporal_reverse,
    )
    transforms, reversals = set(), set()
    for batch in take(dataset, 12):
        for lr, gt in zip(to_uint8(batch['lr']), to_uint8(batch['gt'])):
            frames = [int(f[0, 0, 2]) // 10 for f in lr]  # B channel = 10 * frame + 1
            center = (int(gt[0, 0, 2]) - 1) // 10
            gt_found = identify(gt, center, 8, scale=4)
            assert gt_found is not None, 'GT is not a flipped/rotated crop of its frame'
            for frame_index, lr_frame in zip(frames, lr):
                assert identify(lr_frame, frame_index, 8, scale=1) == gt_found, (
                    'an LR frame got another crop or transform than the GT'
                )
            forward = list(range(center - 2, center + 3))
            assert frames in (forward, forward[::-1])
            assert 0 <= min(frames) and max(frames) < 7  # windows stay inside the clip
            transforms.add(gt_found[2])
            reversals.add(frames != forward)
    assert transforms == set(DIHEDRAL), 'not every flip/rotation was drawn in 48 samples'
    assert reversals == ({False, True} if temporal_reverse else {False})


def test_no_augmentation_means_identity(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    dataset = pipeline.training_dataset(
        mini_dataset,
        spec,
        num_frames=3,
        lr_crop=8,
        batch_size=8,
        use_flip=False,
        use_rotation=False,
    )
    for gt in to_uint8(take(dataset, 2)[0]['gt']):
        assert identify(gt, (int(gt[0, 0, 2]) - 1) // 10, 8, 4)[2] == (False, False, False)


def test_one_epoch_visits_every_window_once(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    lr_paths, gt_paths = pipeline.training_windows(mini_dataset, spec, 5)
    assert len(gt_paths) == 3 + 2  # clips of 7 and 6 frames have 3 and 2 inner centres
    pairs = [(int(s), int(w)) for s, w in pipeline.epoch_order(len(gt_paths), 0, 0).take(15)]
    assert [s for s, _ in pairs] == list(range(15))
    epochs = [[w for _, w in pairs[i : i + 5]] for i in (0, 5, 10)]
    assert all(sorted(e) == list(range(5)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1, 'epochs are not reshuffled'


def test_stream_restarts_exactly(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    kwargs = dict(num_frames=5, lr_crop=8, batch_size=2, seed=7, use_temporal_reverse=True)
    full = take(pipeline.training_dataset(mini_dataset, spec, **kwargs), 5)
    resumed = take(pipeline.training_dataset(mini_dataset, spec, start_sample=6, **kwargs), 2)
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a['lr'], b['lr'])
        np.testing.assert_array_equal(a['gt'], b['gt'])
    other = take(pipeline.training_dataset(mini_dataset, spec, **dict(kwargs, seed=8)), 5)
    assert any(not np.array_equal(a['lr'], b['lr']) for a, b in zip(full, other))


def test_crop_larger_than_frames_is_refused(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    with pytest.raises(
        ValueError, match="video '000' .* LR frames are 24x32, smaller than the training crop 28x28"
    ):
        pipeline.training_dataset(mini_dataset, spec, lr_crop=28)


def test_validation_visits_whole_clips_with_reflection_circle(mini_dataset):
    spec = reds.read_split(mini_dataset, 'val')
    items = take(pipeline.validation_dataset(mini_dataset, spec, num_frames=5), 6)
    with pytest.raises(StopIteration):
        take(pipeline.validation_dataset(mini_dataset, spec, num_frames=5), 7)
    # Worked by hand from BasicSR's generate_frame_indices for a 6-frame clip.
    expected_windows = [
        [4, 3, 0, 1, 2],
        [4, 0, 1, 2, 3],
        [0, 1, 2, 3, 4],
        [1, 2, 3, 4, 5],
        [2, 3, 4, 5, 1],
        [3, 4, 5, 2, 1],
    ]
    for i, (item, window) in enumerate(zip(items, expected_windows)):
        assert item['clip'][0] == b'002' and item['frame'][0] == i
        assert item['lr'].shape == (1, 5, 24, 32, 3) and item['gt'].shape == (1, 96, 128, 3)
        lr = to_uint8(item['lr'][0])
        np.testing.assert_array_equal(lr, np.stack([coordinate_frame(24, 32, j) for j in window]))
        np.testing.assert_array_equal(to_uint8(item['gt'][0]), coordinate_frame(96, 128, i))
