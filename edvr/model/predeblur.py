"""Pre-deblurring module (EDVR paper section 3.4, used for the deblurring tracks)."""

import tensorflow as tf

from edvr.model.layers import conv2d, lrelu, residual_block, upsample_bilinear

NUM_L1_BLOCKS = 5  # fixed by the architecture: 2 blocks, add the coarse path, 3 blocks


def predeblur(frames, num_feat, hr_in, scope='predeblur'):
    """Pyramid of residual blocks that removes blur before alignment.

    frames: (n, h, w, c) with n = b * t. With ``hr_in`` the input is high resolution and
    two stride-2 convs bring it to (n, h / 4, w / 4, num_feat) first.
    Returns (n, h', w', num_feat) with h' = h (or h / 4 with hr_in); h' % 4 == 0 required.
    """
    with tf.compat.v1.variable_scope(scope):
        feat_l1 = lrelu(conv2d(frames, num_feat, name='conv_first'))
        if hr_in:
            feat_l1 = lrelu(conv2d(feat_l1, num_feat, stride=2, name='hr_stride_conv1'))
            feat_l1 = lrelu(conv2d(feat_l1, num_feat, stride=2, name='hr_stride_conv2'))
        feat_l2 = lrelu(
            conv2d(feat_l1, num_feat, stride=2, name='l2_stride_conv')
        )  # (n, h'/2, w'/2, c)
        feat_l3 = lrelu(
            conv2d(feat_l2, num_feat, stride=2, name='l3_stride_conv')
        )  # (n, h'/4, w'/4, c)

        feat_l3 = upsample_bilinear(residual_block(feat_l3, 'l3_resblock'))
        feat_l2 = residual_block(feat_l2, 'l2_resblock_0') + feat_l3
        feat_l2 = upsample_bilinear(residual_block(feat_l2, 'l2_resblock_1'))
        for i in range(NUM_L1_BLOCKS):
            if i == 2:
                feat_l1 = feat_l1 + feat_l2
            feat_l1 = residual_block(feat_l1, f'l1_resblock_{i}')
        return feat_l1
