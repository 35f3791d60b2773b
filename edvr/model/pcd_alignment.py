"""Pyramid, Cascading and Deformable (PCD) alignment (EDVR paper section 3.2)."""

import collections

import tensorflow as tf

from edvr.model.layers import conv2d, dcn_pack, lrelu, offset_branch_kernel_init, upsample_bilinear


def pcd_alignment(nbr_feats, ref_feats, num_feat, deformable_groups, scope='pcd_alignment'):
    """Align neighbour features to the reference, coarse to fine, then refine once more.

    nbr_feats, ref_feats: [l1, l2, l3] of (n, h, w, f), (n, h/2, w/2, f), (n, h/4, w/4, f),
    one row per (clip, neighbour) pair; ``ref_feats`` holds the reference frame's features
    repeated to match.
    Returns (aligned (n, h, w, f), offsets): ``offsets`` maps 'l3', 'l2', 'l1', 'cascading'
    to the DCN (dx, dy) offsets of that stage, (n, h_level, w_level, 2 * G * 9).
    """
    offsets = collections.OrderedDict()
    with tf.compat.v1.variable_scope(scope):
        upsampled_offset = upsampled_feat = None
        for level in (3, 2, 1):
            nbr, ref = nbr_feats[level - 1], ref_feats[level - 1]
            with tf.compat.v1.variable_scope(f'l{level}'):
                offset = lrelu(offset_conv(tf.concat([nbr, ref], -1), num_feat, 'offset_conv1'))
                if level == 3:
                    offset = lrelu(offset_conv(offset, num_feat, 'offset_conv2'))
                else:
                    offset = lrelu(
                        offset_conv(
                            tf.concat([offset, upsampled_offset], -1), num_feat, 'offset_conv2'
                        )
                    )
                    offset = lrelu(offset_conv(offset, num_feat, 'offset_conv3'))
                feat, offsets[f'l{level}'] = dcn_pack(nbr, offset, num_feat, deformable_groups)
                if level < 3:
                    feat = conv2d(tf.concat([feat, upsampled_feat], -1), num_feat, name='feat_conv')
                if level > 1:
                    feat = lrelu(feat)
                    # Offset features describe motion in pixels of this level: twice as many
                    # pixels one level finer. Doubling before the (linear) resize gives the
                    # same bits on a quarter of the pixels.
                    upsampled_offset = upsample_bilinear(offset * 2)
                    upsampled_feat = upsample_bilinear(feat)
        with tf.compat.v1.variable_scope('cascading'):
            offset = lrelu(
                offset_conv(tf.concat([feat, ref_feats[0]], -1), num_feat, 'offset_conv1')
            )
            offset = lrelu(offset_conv(offset, num_feat, 'offset_conv2'))
            feat, offsets['cascading'] = dcn_pack(feat, offset, num_feat, deformable_groups)
            feat = lrelu(feat)
    return feat, offsets


def offset_conv(x, filters, name):
    """A conv of the offset branch: small init (``layers.offset_branch_kernel_init``)."""
    return conv2d(x, filters, name=name, kernel_initializer=offset_branch_kernel_init())
