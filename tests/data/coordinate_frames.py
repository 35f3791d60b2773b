"""Helpers for the data tests: tiny datasets in the seed layout whose pixels name their
row, column and frame."""

import json
import os

import numpy as np
from PIL import Image


def coordinate_frame(height, width, frame_index):
    """uint8 [h, w, 3] whose pixels name themselves: R = row, G = column, B = 10 * frame + 1.

    Any crop, flip, transpose or frame swap shows up as a mismatch in these values.
    """
    rows, cols = np.mgrid[:height, :width]
    blue = np.full((height, width), 10 * frame_index + 1)
    return np.stack([rows, cols, blue], axis=-1).astype(np.uint8)


def write_mini_dataset(root, splits, lr_shape=(24, 32), pixels=coordinate_frame):
    """Writes ``root`` in the seed layout. ``splits`` maps split -> {clip name: nframes}.

    LR frames are ``pixels(h, w, i)``; GT frames are ``pixels(4h, 4w, i)``. Returns root.
    """
    h, w = lr_shape
    for split, clips in splits.items():
        videos = []
        for name, nframes in clips.items():
            for folder, (fh, fw) in (('blur4', (h, w)), ('truth', (4 * h, 4 * w))):
                directory = os.path.join(root, 'images', name, folder)
                os.makedirs(directory, exist_ok=True)
                for i in range(nframes):
                    Image.fromarray(pixels(fh, fw, i)).save(os.path.join(directory, '%08d.png' % i))
            videos.append(
                {'name': name, 'gt_shape': [4 * h, 4 * w], 'x4_shape': [h, w], 'nframes': nframes}
            )
        os.makedirs(os.path.join(root, 'sets'), exist_ok=True)
        with open(os.path.join(root, 'sets', f'{split}.json'), 'w') as f:
            json.dump(
                {'prefix': False, 'gt_folder': 'truth', 'x4_folder': 'blur4', 'videos': videos}, f
            )
    return str(root)
