"""Reader and checker for the seed's dataset layout (docs/data.md).

Layout::

    DATA/images/NNN/blur4/%08d.png   low-resolution input (x4 bicubic in REDS, despite the name)
    DATA/images/NNN/truth/%08d.png   ground truth
    DATA/sets/train.json, DATA/sets/val.json

Each split file is ``{"prefix": false, "gt_folder": "truth", "x4_folder": "blur4",
"videos": [{"name": "000", "gt_shape": [720, 1280], "x4_shape": [180, 320], "nframes": 100}]}``.
Shapes are ``[height, width]``; frame ``i`` of a clip is ``%08d.png % i`` for ``i`` in
``[0, nframes)``.
"""

import concurrent.futures
import dataclasses
import json
import os
import zlib

from PIL import Image, UnidentifiedImageError

from edvr import SCALE

SPLITS = ('train', 'val')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class DatasetError(ValueError):
    """A dataset on disk does not match its split file; the message names the file."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One clip of a split: its folder name, frame shapes ``(h, w)`` and frame count."""

    name: str
    gt_shape: tuple
    x4_shape: tuple
    nframes: int

    def to_json(self):
        return {
            'name': self.name,
            'gt_shape': list(self.gt_shape),
            'x4_shape': list(self.x4_shape),
            'nframes': self.nframes,
        }


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """Contents of ``DATA/sets/<split>.json``."""

    videos: tuple
    gt_folder: str = 'truth'
    x4_folder: str = 'blur4'
    prefix: bool = False

    def to_json(self):
        return {
            'prefix': self.prefix,
            'gt_folder': self.gt_folder,
            'x4_folder': self.x4_folder,
            'videos': [v.to_json() for v in self.videos],
        }


def split_file(data_dir, split):
    """Path of ``DATA/sets/<split>.json``."""
    return os.path.join(data_dir, 'sets', f'{split}.json')


def frame_name(index):
    """File name of frame ``index`` of a clip: ``%08d.png``."""
    return '%08d.png' % index


def clip_dir(data_dir, video_name, folder):
    """Folder holding the frames of one clip for ``folder`` (e.g. ``truth`` or ``blur4``)."""
    return os.path.join(data_dir, 'images', video_name, folder)


def lr_frame_paths(data_dir, spec, video):
    """Paths of the low-resolution frames of ``video`` (a VideoEntry), in frame order."""
    folder = clip_dir(data_dir, video.name, spec.x4_folder)
    return [os.path.join(folder, frame_name(i)) for i in range(video.nframes)]


def gt_frame_paths(data_dir, spec, video):
    """Paths of the ground-truth frames of ``video`` (a VideoEntry), in frame order."""
    folder = clip_dir(data_dir, video.name, spec.gt_folder)
    return [os.path.join(folder, frame_name(i)) for i in range(video.nframes)]


def _require(condition, path, message):
    if not condition:
        raise DatasetError(f'{path}: {message}')


def _parse_shape(value, path, key, video_name):
    _require(
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value),
        path,
        f'video {video_name!r}: {key} must be [height, width] with positive '
        f'integers, got {value!r}',
    )
    return tuple(value)


def parse_split(obj, path='<split>'):
    """Validates a decoded split JSON object and returns a SplitSpec. ``path`` is for errors."""
    _require(isinstance(obj, dict), path, f'expected a JSON object, got {type(obj).__name__}')
    for key in ('gt_folder', 'x4_folder', 'videos'):
        _require(
            key in obj,
            path,
            f'missing key {key!r}; expected keys prefix, gt_folder, x4_folder, videos',
        )
    prefix = obj.get('prefix', False)
    _require(
        prefix is False,
        path,
        f'"prefix" is {prefix!r}; only false (frames named %08d.png) is supported',
    )
    _require(
        isinstance(obj['videos'], list) and obj['videos'],
        path,
        f'"videos" must be a non-empty list, got {obj["videos"]!r:.80}',
    )
    videos, seen = [], set()
    for item in obj['videos']:
        keys = {'name', 'gt_shape', 'x4_shape', 'nframes'}
        _require(
            isinstance(item, dict) and keys <= set(item),
            path,
            f'each video needs name, gt_shape, x4_shape, nframes; got {item!r:.120}',
        )
        name = item['name']
        _require(
            isinstance(name, str) and name and name not in seen,
            path,
            f'video name must be a unique non-empty string, got {name!r}',
        )
        seen.add(name)
        gt_shape = _parse_shape(item['gt_shape'], path, 'gt_shape', name)
        x4_shape = _parse_shape(item['x4_shape'], path, 'x4_shape', name)
        _require(
            gt_shape == (x4_shape[0] * SCALE, x4_shape[1] * SCALE),
            path,
            f'video {name!r}: gt_shape {list(gt_shape)} is not {SCALE}x x4_shape {list(x4_shape)}',
        )
        nframes = item['nframes']
        _require(
            isinstance(nframes, int) and not isinstance(nframes, bool) and nframes > 0,
            path,
            f'video {name!r}: nframes must be a positive integer, got {nframes!r}',
        )
        videos.append(VideoEntry(name, gt_shape, x4_shape, nframes))
    return SplitSpec(
        videos=tuple(videos), gt_folder=obj['gt_folder'], x4_folder=obj['x4_folder'], prefix=False
    )


def read_split(data_dir, split):
    """Reads and validates ``DATA/sets/<split>.json``; raises DatasetError naming the file."""
    path = split_file(data_dir, split)
    if not os.path.isfile(path):
        raise DatasetError(
            f'{path}: split file not found; expected the seed layout '
            f'DATA/sets/{{train,val}}.json under data_dir {data_dir!r}'
        )
    try:
        with open(path) as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f'{path}: not valid JSON ({e})') from e
    return parse_split(obj, path)


def write_split(data_dir, split, spec):
    """Writes ``spec`` to ``DATA/sets/<split>.json`` (atomically)."""
    path = split_file(data_dir, split)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    obj = spec.to_json()
    videos = ',\n  '.join(json.dumps(v) for v in obj.pop('videos'))
    head = json.dumps(obj)[:-1]  # one video per line: readable and diff-friendly
    with open(tmp, 'w') as f:
        f.write(f'{head}, "videos": [\n  {videos}\n]}}\n')
    os.replace(tmp, path)


def verify_png_chunks(path):
    """Reads every chunk of a PNG and checks its CRC, without decompressing pixels.

    Catches truncated and bit-flipped files that a header read accepts. Raises DatasetError.
    """
    with open(path, 'rb') as f:
        data = f.read()
    _require(data[:8] == PNG_SIGNATURE, path, 'not a PNG file (bad signature)')
    pos, saw_end = 8, False
    while pos < len(data):
        _require(pos + 12 <= len(data), path, f'truncated PNG: chunk header cut at byte {pos}')
        length = int.from_bytes(data[pos : pos + 4], 'big')
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        _require(
            end <= len(data),
            path,
            f'truncated PNG: chunk {kind!r} needs {length} bytes, file ends at {len(data)}',
        )
        crc = int.from_bytes(data[end - 4 : end], 'big')
        _require(
            zlib.crc32(data[pos + 4 : end - 4]) == crc,
            path,
            f'corrupt PNG: CRC mismatch in chunk {kind!r} at byte {pos}',
        )
        pos = end
        if kind == b'IEND':
            saw_end = True
            break
    _require(saw_end, path, 'truncated PNG: no IEND chunk')


def check_frame(path, expected_shape, verify_pixels):
    """Checks that ``path`` is a readable PNG of ``expected_shape`` ``(h, w)``.

    With ``verify_pixels`` the whole file is read and every chunk CRC checked; otherwise only
    the header. Raises DatasetError naming the file.
    """
    if not os.path.isfile(path):
        raise DatasetError(f'{path}: missing frame')
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f'{path}: unreadable PNG ({e})') from e
    _require(fmt == 'PNG', path, f'expected a PNG file, got format {fmt}')
    _require(
        (height, width) == tuple(expected_shape),
        path,
        f'frame is {height}x{width} (h x w), the split file says '
        f'{expected_shape[0]}x{expected_shape[1]}',
    )
    if verify_pixels:
        verify_png_chunks(path)


def check_dataset(data_dir, split, verify_pixels=False, num_workers=8):
    """Checks every frame of a split against its JSON and returns the SplitSpec.

    Missing frames, frames whose size disagrees with ``gt_shape``/``x4_shape`` and unreadable
    PNGs raise DatasetError naming the first bad file (in clip and frame order). Frames are
    checked in ``num_workers`` threads; ``verify_pixels`` also checks all PNG chunk CRCs.
    """
    spec = read_split(data_dir, split)
    jobs = []
    for video in spec.videos:
        for folder, shape in ((spec.x4_folder, video.x4_shape), (spec.gt_folder, video.gt_shape)):
            directory = clip_dir(data_dir, video.name, folder)
            if not os.path.isdir(directory):
                raise DatasetError(
                    f'{directory}: missing clip folder for video {video.name!r} '
                    f'of {split_file(data_dir, split)}'
                )
            jobs.extend(
                (os.path.join(directory, frame_name(i)), shape) for i in range(video.nframes)
            )
    with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
        futures = [pool.submit(check_frame, path, shape, verify_pixels) for path, shape in jobs]
        for future in futures:
            future.result()
    return spec
