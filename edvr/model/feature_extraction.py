"""Feature extraction (EDVR paper section 3.1): per-frame features and their L1-L3 pyramid."""

import tensorflow as tf

from edvr.model.layers import conv2d, lrelu, residual_blocks
from edvr.model.predeblur import predeblur


def feature_extraction(frames, cfg, scope='feature_extraction'):
    """Per-frame features at three pyramid levels.

    frames: (n, h, w, c) with n = b * t (frames folded into the batch).
    Returns [l1, l2, l3]: (n, h', w', f), (n, h'/2, w'/2, f), (n, h'/4, w'/4, f), with
    f = num_feat and h' = h, or h / 4 with ``hr_in``.
    """
    num_feat = cfg['num_feat']
    if cfg['with_predeblur']:
        feat = predeblur(frames, num_feat, cfg['hr_in'])
    with tf.compat.v1.variable_scope(scope):
        if cfg['with_predeblur']:
            feat = conv2d(feat, num_feat, kernel_size=1, name='conv_1x1')
        else:
            feat = lrelu(conv2d(frames, num_feat, name='conv_first'))
        feat_l1 = residual_blocks(feat, cfg['num_extract_block'])
        with tf.compat.v1.variable_scope('pyramid'):
            feat_l2 = lrelu(conv2d(feat_l1, num_feat, stride=2, name='l2_conv1'))
            feat_l2 = lrelu(conv2d(feat_l2, num_feat, name='l2_conv2'))
            feat_l3 = lrelu(conv2d(feat_l2, num_feat, stride=2, name='l3_conv1'))
            feat_l3 = lrelu(conv2d(feat_l3, num_feat, name='l3_conv2'))
        return [feat_l1, feat_l2, feat_l3]
