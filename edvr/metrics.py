"""Image quality metrics as BasicSR computes them: PSNR and SSIM on 8-bit images, on RGB and
on the Y channel (ITU-R BT.601 "studio" luma, 16..235, as MATLAB's rgb2ycbcr)."""

import numpy as np
import tensorflow as tf

# Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in [0, 255].
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
Y_OFFSET = 16.0


def rgb_to_y(images):
    """(..., 3) float in [0, 255] -> (..., 1) luma in [16, 235] (not rounded, as BasicSR)."""
    weights = tf.constant(Y_WEIGHTS, images.dtype)
    return tf.expand_dims(tf.tensordot(images, weights, axes=[[-1], [0]]) + Y_OFFSET, -1)


def crop_borders(images, border):
    """Drops ``border`` pixels on each side of (b, h, w, c) images."""
    if border == 0:
        return images
    return images[:, border:-border, border:-border, :]


def image_metrics(prediction, target, crop_border=0):
    """PSNR/SSIM between uint8 (b, h, w, 3) images, each a float32 (b,) tensor.

    Returns {'psnr', 'ssim', 'psnr_y', 'ssim_y'}; SSIM uses the Gaussian 11x11, sigma 1.5
    window of Wang et al. (as BasicSR and ``tf.image.ssim``), averaged over channels.
    """
    prediction = crop_borders(tf.cast(prediction, tf.float32), crop_border)
    target = crop_borders(tf.cast(target, tf.float32), crop_border)
    pred_y, target_y = rgb_to_y(prediction), rgb_to_y(target)
    return {
        'psnr': tf.image.psnr(prediction, target, max_val=255.0),
        'ssim': tf.image.ssim(prediction, target, max_val=255.0),
        'psnr_y': tf.image.psnr(pred_y, target_y, max_val=255.0),
        'ssim_y': tf.image.ssim(pred_y, target_y, max_val=255.0),
    }


def to_uint8(images):
    """float images in [0, 1] -> uint8, rounded (as saving a PNG does)."""
    return tf.saturate_cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
