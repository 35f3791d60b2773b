"""Temporal and Spatial Attention (TSA) fusion (EDVR paper section 3.3)."""

import tensorflow as tf

from edvr.model.layers import (
    avg_pool_3x3_s2,
    conv2d,
    dim,
    lrelu,
    max_pool_3x3_s2,
    sigmoid,
    upsample_bilinear,
)


def fold_frames_into_channels(aligned):
    """(b, t, h, w, f) -> (b, h, w, t * f), channel index frame * f + feature."""
    b, t, h, w, f = (dim(aligned, a) for a in range(5))
    return tf.reshape(tf.transpose(aligned, [0, 2, 3, 1, 4]), [b, h, w, t * f])


def tsa_fusion(aligned, center_frame_idx, num_feat, scope='tsa_fusion'):
    """Weight frames by their similarity to the reference, fuse, then modulate spatially.

    aligned: (b, t, h, w, f) aligned features; h % 4 == 0. Returns (b, h, w, num_feat).
    """
    b, t, h, w, f = (dim(aligned, a) for a in range(5))
    with tf.compat.v1.variable_scope(scope):
        with tf.compat.v1.variable_scope('temporal_attention'):
            embedding_ref = conv2d(
                aligned[:, center_frame_idx], num_feat, name='reference_embedding'
            )
            embedding = conv2d(
                tf.reshape(aligned, [-1, h, w, f]), num_feat, name='neighbor_embedding'
            )
            embedding = tf.reshape(embedding, [b, t, h, w, num_feat])
            correlation = tf.reduce_sum(embedding * embedding_ref[:, None], axis=-1)  # (b, t, h, w)
            weighted = aligned * sigmoid(correlation)[..., None]  # (b, t, h, w, f)
        weighted = fold_frames_into_channels(weighted)  # (b, h, w, t * f)

        feat = lrelu(conv2d(weighted, num_feat, kernel_size=1, name='fusion_conv'))

        with tf.compat.v1.variable_scope('spatial_attention'):
            attn = lrelu(conv2d(weighted, num_feat, kernel_size=1, name='conv1'))
            attn = tf.concat(
                [max_pool_3x3_s2(attn), avg_pool_3x3_s2(attn)], -1
            )  # (b, h/2, w/2, 2f)
            attn = lrelu(conv2d(attn, num_feat, kernel_size=1, name='conv2'))
            # a second pyramid level at (b, h/4, w/4, f)
            attn_level = lrelu(conv2d(attn, num_feat, kernel_size=1, name='pyramid_conv1'))
            attn_level = tf.concat([max_pool_3x3_s2(attn_level), avg_pool_3x3_s2(attn_level)], -1)
            attn_level = lrelu(conv2d(attn_level, num_feat, name='pyramid_conv2'))
            attn_level = lrelu(conv2d(attn_level, num_feat, name='pyramid_conv3'))
            attn_level = upsample_bilinear(attn_level)  # (b, h/2, w/2, f)

            attn = lrelu(conv2d(attn, num_feat, name='conv3')) + attn_level
            attn = lrelu(conv2d(attn, num_feat, kernel_size=1, name='conv4'))
            attn = conv2d(upsample_bilinear(attn), num_feat, name='conv5')  # (b, h, w, f)
            attn_add = conv2d(
                lrelu(conv2d(attn, num_feat, kernel_size=1, name='add_conv1')),
                num_feat,
                kernel_size=1,
                name='add_conv2',
            )
        # sigmoid(attn) starts near 0.5; the factor 2 makes the modulation start near 1.
        return feat * sigmoid(attn) * 2 + attn_add


def plain_fusion(aligned, num_feat, scope='fusion'):
    """Fusion without attention: one 1x1 conv over the stacked frames. (b, t, h, w, f) -> (b, h, w, num_feat)."""
    with tf.compat.v1.variable_scope(scope):
        return conv2d(fold_frames_into_channels(aligned), num_feat, kernel_size=1, name='conv_1x1')
