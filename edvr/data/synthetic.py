"""Generates a small offline video super-resolution dataset in the seed's layout.

Clips are made from photographs shipped inside scikit-image (so it works offline): a virtual
camera pans with sub-pixel steps, hand-held jitter, a slow zoom and rotation over the photo,
and some clips have an object (a textured disc) moving across the scene. Ground truth is the
rendered frame; the low-resolution input is its x4 bicubic (anti-aliased) downscale, as in
REDS. Validation clips come from photographs never used for training.

    python -m edvr.data.synthetic --output data/synthetic [--seed 0]
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from edvr import cli
from edvr.data import reds

GENERATOR_VERSION = 2  # 2: numpy RandomState instead of Generator (other pixels, same statistics)
MANIFEST = 'synthetic.json'
# Photographs from skimage.data; the two lists share no photograph (and no scene).
TRAIN_PHOTOS = (
    'astronaut',
    'motorcycle_left',
    'immunohistochemistry',
    'hubble_deep_field',
    'retina',
    'camera',
    'brick',
    'grass',
    'gravel',
    'coins',
)
VAL_PHOTOS = ('chelsea', 'coffee', 'rocket')
SOURCE_MARGIN = 1.25  # sources are resized to this many times the frame size (room to move)


@dataclasses.dataclass
class SyntheticOptions:
    """What to generate. Sizes are ground-truth pixels; LR frames are 4x smaller."""

    seed: int = 0
    gt_height: int = 256
    gt_width: int = 384
    train_clips_per_photo: int = 2
    train_frames: int = 16
    val_clips_per_photo: int = 1
    val_frames: int = 10
    object_probability: float = 0.5
    max_speed: float = 2.0  # camera pan, GT pixels per frame
    max_rotation: float = 0.3  # degrees per frame
    max_zoom: float = 0.004  # relative scale change per frame
    jitter: float = 0.3  # std of hand-held shake, GT pixels
    train_photos: tuple = TRAIN_PHOTOS
    val_photos: tuple = VAL_PHOTOS

    def __post_init__(self):
        for key in ('gt_height', 'gt_width'):
            value = getattr(self, key)
            if value % reds.SCALE or value < 16 * reds.SCALE:
                raise ValueError(
                    f'{key} must be a multiple of {reds.SCALE} and at least '
                    f'{16 * reds.SCALE}, got {value}'
                )
        for key in ('train_frames', 'val_frames', 'train_clips_per_photo', 'val_clips_per_photo'):
            if getattr(self, key) < 1:
                raise ValueError(f'{key} must be at least 1, got {getattr(self, key)}')
        overlap = set(self.train_photos) & set(self.val_photos)
        if overlap:
            raise ValueError(
                f'photographs {sorted(overlap)} are in both train_photos and '
                f'val_photos; validation must use unseen photographs'
            )
        self.train_photos, self.val_photos = tuple(self.train_photos), tuple(self.val_photos)

    def to_json(self):
        return dict(
            dataclasses.asdict(self),
            train_photos=list(self.train_photos),
            val_photos=list(self.val_photos),
        )


def load_photo(name):
    """RGB uint8 photograph ``[h, w, 3]`` from skimage.data (grey images are replicated)."""
    import skimage.data  # imported here: only the generator needs scikit-image

    if name == 'motorcycle_left':
        image = skimage.data.stereo_motorcycle()[0]
    else:
        try:
            loader = getattr(skimage.data, name)
        except AttributeError as e:
            raise ValueError(f'photo {name!r} is not in skimage.data') from e
        image = loader()
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def prepare_source(photo, gt_height, gt_width):
    """Resizes ``photo`` (anti-aliased) so it is SOURCE_MARGIN times the frame in its tighter
    dimension: the camera then samples at about one source pixel per GT pixel."""
    h, w = photo.shape[:2]
    factor = min(h / (gt_height * SOURCE_MARGIN), w / (gt_width * SOURCE_MARGIN))
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return Image.fromarray(photo).resize(size, Image.LANCZOS)


def rotation(theta_deg):
    t = np.deg2rad(theta_deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def camera_path(rng, options, source_size, nframes):
    """Per-frame 2x3 affine maps from frame pixel (x, y) to source pixel, shape [T, 2, 3].

    Pan with a random velocity, Gaussian jitter, a slow zoom and rotation; the start is chosen
    so every frame stays inside the source (motion is damped until it fits).
    """
    src_w, src_h = source_size
    frame_center = np.array([options.gt_width / 2.0, options.gt_height / 2.0])
    corners = (
        np.array(
            [
                [0, 0],
                [options.gt_width, 0],
                [0, options.gt_height],
                [options.gt_width, options.gt_height],
            ],
            float,
        )
        - frame_center
    )
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(0.3, 1.0) * options.max_speed * np.array([np.cos(angle), np.sin(angle)])
    theta0 = rng.uniform(-3.0, 3.0)
    omega = rng.uniform(-1, 1) * options.max_rotation
    zoom = rng.uniform(-1, 1) * options.max_zoom
    jitter = rng.normal(0.0, options.jitter, size=(nframes, 2))
    t = np.arange(nframes)[:, None]
    margin = 3.0  # bicubic taps stay inside the source
    for _ in range(60):
        scales = (1.0 + zoom) ** np.arange(nframes)
        linears = np.stack([s * rotation(theta0 + omega * k) for k, s in enumerate(scales)])
        offsets = velocity * t + jitter  # [T, 2]
        extents = np.einsum('tij,cj->tci', linears, corners) + offsets[:, None, :]  # [T, 4, 2]
        low = -extents.min(axis=(0, 1)) + margin
        high = np.array([src_w, src_h]) - extents.max(axis=(0, 1)) - margin
        if np.all(low <= high):
            break
        velocity, omega, zoom, jitter = velocity * 0.8, omega * 0.8, zoom * 0.8, jitter * 0.8
        theta0 *= 0.8
    else:
        raise ValueError(
            f'source of {src_w}x{src_h} is too small for {options.gt_width}x'
            f'{options.gt_height} frames'
        )
    start = low + rng.uniform(0, 1, size=2) * (high - low)
    centers = start + offsets  # [T, 2]
    translations = centers - np.einsum('tij,j->ti', linears, frame_center)
    return np.concatenate([linears, translations[:, :, None]], axis=2)


def make_object(rng, photo_pool, options):
    """A textured disc (RGBA float image) cut from a photograph, with a soft edge."""
    radius = int(rng.uniform(0.08, 0.16) * min(options.gt_height, options.gt_width))
    photo = photo_pool[rng.randint(len(photo_pool))]
    size = 2 * radius + 4
    x0 = rng.randint(0, photo.width - size)
    y0 = rng.randint(0, photo.height - size)
    rgb = np.asarray(photo.crop((x0, y0, x0 + size, y0 + size)), np.float32)
    yy, xx = np.mgrid[:size, :size] + 0.5 - size / 2.0
    alpha = np.clip(radius - np.sqrt(xx**2 + yy**2) + 0.5, 0.0, 1.0)[..., None]
    start = rng.uniform([0, 0], [options.gt_width, options.gt_height]) - size / 2.0
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(1.5, 4.0) * np.array([np.cos(angle), np.sin(angle)])
    return np.concatenate([rgb, alpha * 255.0], axis=-1), start, velocity


def warp(image, affine, size):
    """Bicubic warp of a PIL image: output pixel (x, y) samples ``affine @ (x, y, 1)``."""
    return image.transform(size, Image.AFFINE, tuple(affine.reshape(-1)), resample=Image.BICUBIC)


def render_clip(rng, source, object_pool, options, nframes):
    """Ground-truth frames of one clip, uint8 ``[T, gt_height, gt_width, 3]``."""
    size = (options.gt_width, options.gt_height)
    affines = camera_path(rng, options, source.size, nframes)
    moving = rng.uniform() < options.object_probability
    if moving:
        patch, obj_start, obj_velocity = make_object(rng, object_pool, options)
        channels = [Image.fromarray(patch[..., c].astype(np.float32), 'F') for c in range(4)]
    frames = []
    for k in range(nframes):
        frame = np.asarray(warp(source, affines[k], size), np.float32)
        if moving:
            shift = obj_start + obj_velocity * k  # object's top-left in frame pixels
            translate = np.array([[1.0, 0.0, -shift[0]], [0.0, 1.0, -shift[1]]])
            layer = np.stack([np.asarray(warp(ch, translate, size)) for ch in channels], -1)
            alpha = np.clip(layer[..., 3:] / 255.0, 0.0, 1.0)
            frame = frame * (1.0 - alpha) + layer[..., :3] * alpha
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return np.stack(frames)


def bicubic_downscale(frame, scale=reds.SCALE):
    """x``scale`` anti-aliased bicubic downscale of a uint8 ``[h, w, 3]`` frame (MATLAB-like)."""
    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w // scale, h // scale), Image.BICUBIC))


def write_clip(data_dir, name, gt_frames):
    """Writes GT and x4 LR frames of one clip; returns its VideoEntry."""
    gt_dir = reds.clip_dir(data_dir, name, 'truth')
    lr_dir = reds.clip_dir(data_dir, name, 'blur4')
    os.makedirs(gt_dir)
    os.makedirs(lr_dir)
    for i, gt in enumerate(gt_frames):
        Image.fromarray(gt).save(os.path.join(gt_dir, reds.frame_name(i)), compress_level=1)
        Image.fromarray(bicubic_downscale(gt)).save(
            os.path.join(lr_dir, reds.frame_name(i)), compress_level=1
        )
    h, w = gt_frames.shape[1:3]
    return reds.VideoEntry(name, (h, w), (h // reds.SCALE, w // reds.SCALE), len(gt_frames))


def generate(output_dir, options):
    """Generates the dataset into ``output_dir`` (must not hold files). Returns clip counts."""
    rng = np.random.RandomState(
        options.seed
    )  # Generator is numpy 1.17+; the Ascend host may have 1.16
    splits = {
        'train': (options.train_photos, options.train_clips_per_photo, options.train_frames),
        'val': (options.val_photos, options.val_clips_per_photo, options.val_frames),
    }
    clip_number = 0
    counts = {}
    for split, (photos, clips_per_photo, nframes) in splits.items():
        sources = [
            prepare_source(load_photo(p), options.gt_height, options.gt_width) for p in photos
        ]
        videos = []
        for source in sources:
            for _ in range(clips_per_photo):
                frames = render_clip(rng, source, sources, options, nframes)
                videos.append(write_clip(output_dir, '%03d' % clip_number, frames))
                clip_number += 1
        reds.write_split(output_dir, split, reds.SplitSpec(videos=tuple(videos)))
        counts[split] = len(videos)
    with open(os.path.join(output_dir, MANIFEST), 'w') as f:
        json.dump(
            {
                'generator': 'edvr.data.synthetic',
                'version': GENERATOR_VERSION,
                'options': options.to_json(),
            },
            f,
            indent=1,
        )
    return counts


def existing_dataset(output_dir):
    """Returns the stored manifest if ``output_dir`` holds a valid dataset, else None.

    Raises DatasetError naming the bad file when the split files exist but the frames do not
    match them.
    """
    if not all(os.path.isfile(reds.split_file(output_dir, s)) for s in reds.SPLITS):
        return None
    for split in reds.SPLITS:
        reds.check_dataset(output_dir, split)
    path = os.path.join(output_dir, MANIFEST)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return {}


def ensure_dataset(output_dir, options=None, force=False, log=print):
    """Generates the dataset unless ``output_dir`` already holds a valid one (then reuses it).

    Generation goes to a temporary sibling folder renamed into place at the end, so an
    interrupted run never leaves a half-written dataset. ``force`` regenerates a folder made
    by this generator. Returns ``output_dir``.
    """
    options = options or SyntheticOptions()
    output_dir = os.path.abspath(output_dir)
    manifest_path = os.path.join(output_dir, MANIFEST)
    if not force:
        manifest = existing_dataset(output_dir)
        if manifest is not None:
            same = manifest.get('options') == options.to_json()
            log(
                f'{output_dir} already holds a valid dataset; reusing it'
                + ('' if same else ' (made with other options; pass --force to regenerate)')
            )
            return output_dir
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not (force and os.path.isfile(manifest_path)):
            raise FileExistsError(
                f'{output_dir} is not empty and holds no valid dataset; expected an empty or '
                f'missing folder (or one made by this generator, with --force)'
            )
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    start = time.time()
    tmp = tempfile.mkdtemp(prefix='.synthetic-', dir=parent)
    try:
        counts = generate(tmp, options)
        if os.path.isdir(output_dir):
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f'wrote {counts["train"]} training and {counts["val"]} validation clips '
        f'({options.gt_height}x{options.gt_width} GT, x4 LR) to {output_dir} in '
        f'{time.time() - start:.1f} s'
    )
    return output_dir


def make_parser():
    defaults = SyntheticOptions()
    parser = cli.tool_parser('data.synthetic', __doc__.split('\n\n')[0], threads=False)
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument('--output', required=True, help='dataset folder to write (seed layout)')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--gt_height', type=int, default=defaults.gt_height)
    parser.add_argument('--gt_width', type=int, default=defaults.gt_width)
    parser.add_argument('--train_clips_per_photo', type=int, default=defaults.train_clips_per_photo)
    parser.add_argument('--train_frames', type=int, default=defaults.train_frames)
    parser.add_argument('--val_clips_per_photo', type=int, default=defaults.val_clips_per_photo)
    parser.add_argument('--val_frames', type=int, default=defaults.val_frames)
    parser.add_argument(
        '--object_probability',
        type=float,
        default=defaults.object_probability,
        help='share of clips with a moving object',
    )
    parser.add_argument(
        '--force', action='store_true', help='regenerate even if OUTPUT holds a valid dataset'
    )
    return parser


def run(args):
    options = SyntheticOptions(
        **{k: v for k, v in vars(args).items() if k not in ('output', 'force')}
    )
    ensure_dataset(args.output, options, force=args.force)


def main(argv=None):
    return cli.main('data.synthetic', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
