"""Reconstruction (EDVR paper section 3.1): residual blocks and two pixel-shuffle x2 stages."""

import tensorflow as tf

from edvr.model.layers import conv2d, lrelu, pixel_shuffle, residual_blocks


def reconstruction(feat, cfg, scope='reconstruction'):
    """Fused features (b, h, w, num_feat) -> residual image (b, 4h, 4w, num_out_ch)."""
    num_feat, up_feat = cfg['num_feat'], cfg['num_upsample_feat']
    with tf.compat.v1.variable_scope(scope):
        out = residual_blocks(feat, cfg['num_reconstruct_block'])
        # LeakyReLU before the pixel shuffle (a permutation: the same values), where grappler
        # fuses it into the conv instead of running it on its own.
        out = pixel_shuffle(lrelu(conv2d(out, num_feat * 4, name='upconv1')))  # (b, 2h, 2w, f)
        out = pixel_shuffle(lrelu(conv2d(out, up_feat * 4, name='upconv2')))  # (b, 4h, 4w, up_f)
        out = lrelu(conv2d(out, up_feat, name='hr_conv'))
        # Zero init: the network starts as its bilinear base (residual exactly 0), with the
        # Kaiming-initialised layers before it carrying a full-scale signal, so the first
        # steps grow a useful residual instead of a random one of the same scale.
        return conv2d(
            out,
            cfg['num_out_ch'],
            name='conv_last',
            kernel_initializer=tf.compat.v1.zeros_initializer(),
        )
