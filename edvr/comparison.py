"""A side-by-side figure of bicubic, EDVR and ground-truth crops (``comparison.png``)."""

import numpy as np
from PIL import Image, ImageDraw

LABELS = ('bicubic', 'EDVR', 'ground truth')


def detailed_crop_box(gt, size):
    """(top, left) of the ``size`` x ``size`` window of ``gt`` (h, w, 3) with the most edges."""
    h, w = gt.shape[:2]
    size = min(size, h, w)
    gray = gt.astype(np.float64).mean(axis=-1)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    step = max(1, size // 4)
    best, box = -1.0, (0, 0)
    for top in range(0, h - size, step):
        for left in range(0, w - size, step):
            total = (
                integral[top + size - 1, left + size - 1]
                - integral[top, left + size - 1]
                - integral[top + size - 1, left]
                + integral[top, left]
            )
            if total > best:
                best, box = total, (top, left)
    return box, size


def comparison_image(bicubic, edvr, gt, crop=128, zoom=2, caption=None):
    """uint8 image: the three (h, w, 3) frames cropped alike, zoomed, side by side, labelled."""
    (top, left), size = detailed_crop_box(gt, crop)
    tiles = [
        Image.fromarray(im[top : top + size, left : left + size]).resize(
            (size * zoom, size * zoom), Image.NEAREST
        )
        for im in (bicubic, edvr, gt)
    ]
    label_height, gap = 18, 4
    width = len(tiles) * size * zoom + (len(tiles) - 1) * gap
    height = size * zoom + label_height * (2 if caption else 1)
    canvas = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(canvas)
    for i, (tile, label) in enumerate(zip(tiles, LABELS)):
        x = i * (size * zoom + gap)
        canvas.paste(tile, (x, label_height))
        draw.text((x + 4, 3), label, fill='black')
    if caption:
        draw.text((4, label_height + size * zoom + 3), caption, fill='black')
    return np.asarray(canvas)


def save_comparison(path, bicubic, edvr, gt, caption=None):
    """Writes the comparison figure to ``path`` (PNG)."""
    Image.fromarray(comparison_image(bicubic, edvr, gt, caption=caption)).save(path)
