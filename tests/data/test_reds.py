"""The seed-layout reader and its dataset check, and the temporal window rule."""

import json
import os

import pytest
from PIL import Image

from edvr.data import frame_indices, reds


def frame(root, clip, folder, index):
    return os.path.join(root, 'images', clip, folder, '%08d.png' % index)


def test_reads_split_and_paths(mini_dataset):
    spec = reds.check_dataset(mini_dataset, 'train', verify_pixels=True)
    assert [v.name for v in spec.videos] == ['000', '001']
    assert spec.videos[0] == reds.VideoEntry('000', (96, 128), (24, 32), 7)
    assert reds.lr_frame_paths(mini_dataset, spec, spec.videos[1])[-1] == frame(
        mini_dataset, '001', 'blur4', 5
    )
    assert reds.gt_frame_paths(mini_dataset, spec, spec.videos[0])[0] == frame(
        mini_dataset, '000', 'truth', 0
    )


def test_write_split_round_trips(tmp_path, mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    reds.write_split(str(tmp_path), 'train', spec)
    with open(reds.split_file(str(tmp_path), 'train')) as f:
        assert json.load(f) == spec.to_json()
    assert reds.read_split(str(tmp_path), 'train') == spec


def test_missing_frame_is_named(mini_dataset):
    missing = frame(mini_dataset, '001', 'blur4', 3)
    os.remove(missing)
    with pytest.raises(reds.DatasetError, match=f'{missing}: missing frame'):
        reds.check_dataset(mini_dataset, 'train')


def test_missing_clip_folder_is_named(mini_dataset):
    folder = os.path.join(mini_dataset, 'images', '002', 'truth')
    os.rename(folder, folder + '_gone')
    with pytest.raises(reds.DatasetError, match=f'{folder}: missing clip folder'):
        reds.check_dataset(mini_dataset, 'val')


def test_garbage_png_is_named(mini_dataset):
    bad = frame(mini_dataset, '000', 'truth', 2)
    with open(bad, 'wb') as f:
        f.write(b'this is not an image')
    with pytest.raises(reds.DatasetError, match=f'{bad}: unreadable PNG'):
        reds.check_dataset(mini_dataset, 'train')


def test_truncated_png_is_caught_by_the_full_check(mini_dataset):
    bad = frame(mini_dataset, '001', 'truth', 1)
    with open(bad, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(reds.DatasetError, match=f'{bad}: truncated PNG'):
        reds.check_dataset(mini_dataset, 'train', verify_pixels=True)


def test_bit_flip_is_caught_by_the_full_check(mini_dataset):
    bad = frame(mini_dataset, '000', 'blur4', 0)
    with open(bad, 'rb') as f:
        data = bytearray(f.read())
    data[60] ^= 0xFF  # inside the compressed pixel data
    with open(bad, 'wb') as f:
        f.write(bytes(data))
    with pytest.raises(reds.DatasetError, match=f'{bad}: corrupt PNG: CRC mismatch'):
        reds.check_dataset(mini_dataset, 'train', verify_pixels=True)


def test_wrong_frame_size_is_named(mini_dataset):
    bad = frame(mini_dataset, '002', 'blur4', 3)
    Image.new('RGB', (32, 20)).save(bad)
    with pytest.raises(
        reds.DatasetError, match=f'{bad}: frame is 20x32 \\(h x w\\), the split file says 24x32'
    ):
        reds.check_dataset(mini_dataset, 'val')


def test_split_file_errors(tmp_path, mini_dataset):
    with pytest.raises(reds.DatasetError, match='split file not found'):
        reds.read_split(str(tmp_path), 'train')
    path = reds.split_file(mini_dataset, 'val')
    with open(path) as f:
        obj = json.load(f)
    obj['videos'][0]['gt_shape'] = [100, 128]
    with open(path, 'w') as f:
        json.dump(obj, f)
    with pytest.raises(reds.DatasetError, match=r"gt_shape \[100, 128\] is not 4x x4_shape"):
        reds.read_split(mini_dataset, 'val')
    obj['prefix'] = True
    with pytest.raises(reds.DatasetError, match='"prefix" is True'):
        reds.parse_split(obj)


@pytest.mark.parametrize(
    'center, expected',
    [
        (0, [4, 3, 0, 1, 2]),  # worked by hand from BasicSR's generate_frame_indices
        (1, [4, 0, 1, 2, 3]),
        (2, [0, 1, 2, 3, 4]),
        (98, [96, 97, 98, 99, 95]),
        (99, [97, 98, 99, 96, 95]),
    ],
)
def test_reflection_circle_windows(center, expected):
    assert frame_indices.window_indices(center, 100, 5, 'reflection_circle') == expected


def test_other_paddings_and_errors():
    assert frame_indices.window_indices(0, 10, 5, 'replicate') == [0, 0, 0, 1, 2]
    assert frame_indices.window_indices(0, 10, 5, 'reflection') == [2, 1, 0, 1, 2]
    assert frame_indices.window_indices(9, 10, 5, 'circle') == [7, 8, 9, 5, 6]
    with pytest.raises(ValueError, match='num_frames must be odd'):
        frame_indices.window_indices(0, 10, 4)
    with pytest.raises(ValueError, match='too short'):
        frame_indices.window_indices(0, 2, 5)
    assert frame_indices.training_centers(7, 5) == [2, 3, 4]
