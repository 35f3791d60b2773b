"""Validation of an EDVR graph over whole clips: PSNR/SSIM (RGB and Y) per clip and on
average, next to bicubic upsampling of the same centre frames. The library under
``edvr.evaluate``, and the periodic validation of ``edvr.train``."""

import collections
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from edvr import metrics
from edvr.data import pipeline, reds
from edvr.inference import pad_to_multiple_graph
from edvr.model import build_edvr, center_frame_index, output_scale, size_multiple

METRIC_NAMES = ('psnr', 'ssim', 'psnr_y', 'ssim_y')
METHODS = ('edvr', 'bicubic')


def bicubic_upsample(frame, scale=reds.SCALE):
    """x``scale`` bicubic upsampling of a uint8 (h, w, 3) frame (Pillow, a = -0.5)."""
    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w * scale, h * scale), Image.BICUBIC))


class Evaluator:
    """Builds, in the default graph, a validation pass over ``spec``'s clips.

    The model tower is built on the validation frames with ``reuse`` (True inside training,
    to share the training tower's weights). ``run(sess)`` returns the results dict
    ``{'clips': OrderedDict(name -> {'frames': n, 'edvr': {metric: mean}, 'bicubic': {...}}),
    'average': {'edvr': {...}, 'bicubic': {...}}}``; the average is over clips, as BasicSR.
    """

    def __init__(
        self,
        data_dir,
        spec,
        config,
        crop_border=0,
        reuse=None,
        scope='edvr',
        compute_dtype=tf.float32,
    ):
        model_cfg = config['model']
        if output_scale(model_cfg) != reds.SCALE:
            raise ValueError('evaluation needs an x4 model (model.hr_in: false)')
        self.spec, self.crop_border = spec, crop_border
        self.center = center_frame_index(model_cfg)
        dataset = pipeline.validation_dataset(
            data_dir,
            spec,
            num_frames=model_cfg['num_frame'],
            padding=config['data']['val_padding'],
            num_parallel_calls=config['data']['num_parallel_calls'],
        )
        self.iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        item = self.iterator.get_next()
        padded, h, w = pad_to_multiple_graph(item['lr'], size_multiple(model_cfg))
        output, _ = build_edvr(
            padded, model_cfg, scope=scope, reuse=reuse, compute_dtype=compute_dtype
        )
        output = output[:, : h * reds.SCALE, : w * reds.SCALE, :]
        self.fetches = {
            'edvr': metrics.to_uint8(output),
            'gt': metrics.to_uint8(item['gt']),
            'lr_center': metrics.to_uint8(item['lr'][:, self.center]),
            'clip': item['clip'],
            'frame': item['frame'],
        }
        self.prediction = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], 'pred_u8')
        self.target = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], 'target_u8')
        self.metrics = metrics.image_metrics(self.prediction, self.target, crop_border)

    def frames(self, sess):
        """Yields per frame dicts: clip (str), frame (int), edvr, bicubic, gt (uint8 h x w x 3)."""
        sess.run(self.iterator.initializer)
        while True:
            try:
                got = sess.run(self.fetches)
            except tf.errors.OutOfRangeError:
                return
            yield {
                'clip': got['clip'][0].decode(),
                'frame': int(got['frame'][0]),
                'edvr': got['edvr'][0],
                'gt': got['gt'][0],
                'bicubic': bicubic_upsample(got['lr_center'][0]),
            }

    def score(self, sess, image, target):
        values = sess.run(self.metrics, {self.prediction: image[None], self.target: target[None]})
        return {k: float(v[0]) for k, v in values.items()}

    def run(self, sess, save_images=None, on_frame=None):
        """Evaluates every frame; ``save_images``: folder for EDVR outputs (CLIP/%08d.png);
        ``on_frame(frame_dict)`` is called for each frame (e.g. to keep one for a figure)."""
        per_clip = collections.OrderedDict()
        for frame in self.frames(sess):
            scores = per_clip.setdefault(frame['clip'], {m: [] for m in METHODS})
            for method in METHODS:
                scores[method].append(self.score(sess, frame[method], frame['gt']))
            if save_images:
                folder = os.path.join(save_images, frame['clip'])
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(frame['edvr']).save(
                    os.path.join(folder, reds.frame_name(frame['frame']))
                )
            if on_frame:
                on_frame(frame)
        clips = collections.OrderedDict()
        for name, scores in per_clip.items():
            clips[name] = {'frames': len(scores['edvr'])}
            for method in METHODS:
                clips[name][method] = {
                    m: float(np.mean([s[m] for s in scores[method]])) for m in METRIC_NAMES
                }
        average = {
            method: {
                m: float(np.mean([c[method][m] for c in clips.values()])) for m in METRIC_NAMES
            }
            for method in METHODS
        }
        return {'clips': clips, 'average': average, 'crop_border': self.crop_border}


def format_table(results):
    """The results as a text table: per clip and average, EDVR then bicubic, and the gain."""
    header = (
        f'{"clip":>8} {"frames":>6} | {"EDVR PSNR":>9} {"SSIM":>6} {"PSNR-Y":>7} '
        f'{"SSIM-Y":>6} | {"bicubic PSNR":>12} {"SSIM":>6} {"PSNR-Y":>7} {"SSIM-Y":>6} '
        f'| {"gain dB":>7}'
    )
    lines = [header, '-' * len(header)]

    def row(name, frames, entry):
        e, b = entry['edvr'], entry['bicubic']
        return (
            f'{name:>8} {frames:>6} | {e["psnr"]:9.3f} {e["ssim"]:6.4f} {e["psnr_y"]:7.3f} '
            f'{e["ssim_y"]:6.4f} | {b["psnr"]:12.3f} {b["ssim"]:6.4f} {b["psnr_y"]:7.3f} '
            f'{b["ssim_y"]:6.4f} | {e["psnr"] - b["psnr"]:+7.3f}'
        )

    for name, entry in results['clips'].items():
        lines.append(row(name, entry['frames'], entry))
    lines.append('-' * len(header))
    total = sum(entry['frames'] for entry in results['clips'].values())
    lines.append(row('average', total, results['average']))
    return '\n'.join(lines)
