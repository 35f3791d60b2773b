"""In-graph training monitors: DCN offset magnitudes and sample images for TensorBoard.

EDVR's known instability shows as exploding deformable offsets (the original code warns
"offset mean is larger than 100"). The magnitudes are graph tensors fetched only on summary
steps, so monitoring adds no host sync to ordinary steps.
"""

import collections

import tensorflow as tf


def offset_magnitudes(dcn_offsets):
    """Mean |offset| per DCN, and their maximum.

    ``dcn_offsets``: mapping name -> (n, h, w, 2*G*9) (dx, dy) offsets, as the model's
    ``endpoints['dcn_offsets']``. Returns (OrderedDict name -> float32 scalar, float32 scalar).
    """
    means = collections.OrderedDict(
        (name, tf.reduce_mean(tf.abs(offsets))) for name, offsets in dcn_offsets.items()
    )
    return means, tf.reduce_max(tf.stack(list(means.values())))


def sample_strip(lr_center, output, gt):
    """One (1, H, 3W, 3) image of the first batch item: bicubic | EDVR | ground truth.

    ``lr_center``: (b, h, w, 3); ``output``, ``gt``: (b, H, W, 3), all in [0, 1]; the bicubic
    image is ``lr_center`` resized to (H, W).
    """
    size = tf.shape(gt)[1:3]
    bicubic = tf.compat.v1.image.resize_bicubic(lr_center[:1], size, half_pixel_centers=True)
    strip = tf.concat([bicubic, output[:1], gt[:1]], axis=2)
    return tf.clip_by_value(strip, 0.0, 1.0)


def scalar_summary(values):
    """A Summary protocol buffer of host-side scalars ``{tag: float}``."""
    summary = tf.compat.v1.Summary()
    for tag, value in values.items():
        entry = summary.value.add()
        entry.tag, entry.simple_value = tag, float(value)
    return summary
