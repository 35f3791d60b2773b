"""Turns an original REDS download into the seed's layout (docs/data.md).

Input (as unzipped by ``edvr.data.download_reds``; the ``train/`` and ``val/`` levels are
optional)::

    SRC/train/train_sharp/NNN/%08d.png            SRC/val/val_sharp/NNN/%08d.png
    SRC/train/train_sharp_bicubic/X4/NNN/...      SRC/val/val_sharp_bicubic/X4/NNN/...

Output: ``DST/images/NNN/{truth,blur4}/%08d.png`` with the official validation clips renumbered
240-269 (``NNN + 240``), ``DST/sets/val.json`` holding REDS4 (000, 011, 015, 020) and
``DST/sets/train.json`` every other clip.

    python -m edvr.data.regroup_reds --src /data/REDS_zip --dst /data/REDS [--mode move]
"""

import os
import re
import shutil
import sys

from PIL import Image

from edvr import cli
from edvr.data import reds

REDS4 = ('000', '011', '015', '020')
VAL_OFFSET = 240
FRAME_PATTERN = re.compile(r'^(\d{8})\.png$')
MODES = ('move', 'copy', 'symlink')


def find_folder(src, split, name):
    """``SRC/<split>/<name>`` or ``SRC/<name>``, whichever exists; None if neither."""
    for candidate in (os.path.join(src, split, name), os.path.join(src, name)):
        if os.path.isdir(candidate):
            return candidate
    return None


def count_frames(folder):
    """Number of frames in a clip folder; raises DatasetError if names are not 0..n-1."""
    indices = sorted(int(m.group(1)) for m in map(FRAME_PATTERN.match, os.listdir(folder)) if m)
    if not indices:
        raise reds.DatasetError(f'{folder}: no %08d.png frames')
    for expected, got in enumerate(indices):
        if got != expected:
            raise reds.DatasetError(
                f'{os.path.join(folder, reds.frame_name(expected))}: '
                f'missing frame (clip has frames up to {indices[-1]})'
            )
    return len(indices)


def frame_shape(path):
    """``(h, w)`` of a PNG from its header."""
    with Image.open(path) as image:
        width, height = image.size
    return height, width


def plan_clips(src):
    """Lists the clips to move: ``[(new_name, gt_folder, lr_folder)]``, train then val.

    Raises DatasetError when the training folders are missing or only half of a pair exists.
    """
    plan = []
    pairs = (
        ('train', 'train_sharp', 'train_sharp_bicubic/X4', 0),
        ('val', 'val_sharp', 'val_sharp_bicubic/X4', VAL_OFFSET),
    )
    for split, gt_name, lr_name, offset in pairs:
        gt_root, lr_root = find_folder(src, split, gt_name), find_folder(src, split, lr_name)
        if gt_root is None and lr_root is None and split == 'val':
            print(f'note: {src} has no {gt_name} nor {lr_name}; training uses clips 000-239 only')
            continue
        for root, name in ((gt_root, gt_name), (lr_root, lr_name)):
            if root is None:
                raise reds.DatasetError(
                    f'{os.path.join(src, split, name)}: folder not found (nor '
                    f'{os.path.join(src, name)}); expected an unzipped REDS {name}'
                )
        gt_clips = sorted(d for d in os.listdir(gt_root) if os.path.isdir(os.path.join(gt_root, d)))
        lr_clips = sorted(d for d in os.listdir(lr_root) if os.path.isdir(os.path.join(lr_root, d)))
        if gt_clips != lr_clips:
            only = sorted(set(gt_clips) ^ set(lr_clips))
            raise reds.DatasetError(
                f'{gt_root} and {lr_root} hold different clips; only in one of them: {only[:10]}'
            )
        for clip in gt_clips:
            if not clip.isdigit():
                raise reds.DatasetError(
                    f'{os.path.join(gt_root, clip)}: clip folder names must '
                    f'be numbers like 000, got {clip!r}'
                )
            plan.append(
                (
                    '%03d' % (int(clip) + offset),
                    os.path.join(gt_root, clip),
                    os.path.join(lr_root, clip),
                )
            )
    return plan


def describe_clip(name, gt_folder, lr_folder):
    """VideoEntry of a source clip, checking GT and LR agree in frame count and scale."""
    nframes = count_frames(gt_folder)
    lr_frames = count_frames(lr_folder)
    if lr_frames != nframes:
        raise reds.DatasetError(f'{lr_folder}: {lr_frames} frames, but {gt_folder} has {nframes}')
    gt_shape = frame_shape(os.path.join(gt_folder, reds.frame_name(0)))
    x4_shape = frame_shape(os.path.join(lr_folder, reds.frame_name(0)))
    if gt_shape != (x4_shape[0] * reds.SCALE, x4_shape[1] * reds.SCALE):
        raise reds.DatasetError(
            f'{os.path.join(lr_folder, reds.frame_name(0))}: LR frame is '
            f'{x4_shape}, expected GT {gt_shape} / {reds.SCALE}'
        )
    return reds.VideoEntry(name, gt_shape, x4_shape, nframes)


def place(source, target, mode):
    """Moves, copies or symlinks folder ``source`` to ``target``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if mode == 'move':
        shutil.move(source, target)
    elif mode == 'copy':
        shutil.copytree(source, target)
    else:
        os.symlink(os.path.abspath(source), target)


def regroup(src, dst, mode='move', val_clips=REDS4, check=True):
    """Regroups ``src`` into ``dst``; returns ``(train_spec, val_spec)``.

    Everything is validated before the first file moves. With ``check`` the result is checked
    frame by frame (headers) against the written split files.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    plan = plan_clips(src)
    videos = [describe_clip(*item) for item in plan]
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        raise reds.DatasetError(
            f'{src}: clip numbers collide after renumbering validation clips by +{VAL_OFFSET}'
        )
    missing = [c for c in val_clips if c not in names]
    if missing:
        raise reds.DatasetError(
            f'{src}: validation clips {missing} not found among the training clips'
        )
    for name in names:
        target = os.path.join(dst, 'images', name)
        if os.path.exists(target):
            raise FileExistsError(f'{target} already exists; expected an empty destination')
    for name, gt_folder, lr_folder in plan:
        place(gt_folder, reds.clip_dir(dst, name, 'truth'), mode)
        place(lr_folder, reds.clip_dir(dst, name, 'blur4'), mode)
    train = reds.SplitSpec(videos=tuple(v for v in videos if v.name not in val_clips))
    val = reds.SplitSpec(videos=tuple(v for v in videos if v.name in val_clips))
    reds.write_split(dst, 'train', train)
    reds.write_split(dst, 'val', val)
    if check:
        for split in reds.SPLITS:
            reds.check_dataset(dst, split)
    return train, val


def make_parser():
    parser = cli.tool_parser('data.regroup_reds', __doc__.split('\n\n')[0], threads=False)
    parser.add_argument('--src', required=True, help='folder with the unzipped REDS download')
    parser.add_argument('--dst', required=True, help='dataset folder to create (seed layout)')
    parser.add_argument(
        '--mode',
        choices=MODES,
        default='move',
        help='move (fast, same disk), copy, or symlink the clip folders',
    )
    parser.add_argument(
        '--val_clips',
        default=','.join(REDS4),
        help='comma-separated clips for sets/val.json (default REDS4)',
    )
    parser.add_argument('--no_check', action='store_true', help='skip the frame-by-frame check')
    return parser


def run(args):
    train, val = regroup(
        args.src, args.dst, args.mode, tuple(args.val_clips.split(',')), check=not args.no_check
    )
    print(
        f'wrote {args.dst}: {len(train.videos)} training clips, {len(val.videos)} validation '
        f'clips ({", ".join(v.name for v in val.videos)})'
    )


def main(argv=None):
    return cli.main('data.regroup_reds', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
