"""The EDVR network (Wang et al., arXiv 1905.02716) assembled from its paper components."""

import collections

import tensorflow as tf

from edvr import SCALE
from edvr.model.feature_extraction import feature_extraction
from edvr.model.layers import dim, upsample_bilinear
from edvr.model.pcd_alignment import pcd_alignment
from edvr.model.reconstruction import reconstruction
from edvr.model.tsa_fusion import plain_fusion, tsa_fusion
from edvr.precision import master_variable_getter


def center_frame_index(cfg):
    """The reference frame: ``center_frame_idx`` or the middle of the window."""
    center = cfg['center_frame_idx']
    return cfg['num_frame'] // 2 if center is None else center


def size_multiple(cfg):
    """Input height and width must be multiples of this (pyramid and TSA pooling need /4)."""
    return 16 if cfg['hr_in'] else 4


def output_scale(cfg):
    """Output size / input size: 4, or 1 with ``hr_in`` (input already high resolution)."""
    return 1 if cfg['hr_in'] else SCALE


def build_edvr(frames, cfg, scope='edvr', reuse=None, compute_dtype=tf.float32):
    """Build the EDVR graph.

    Args:
      frames: (b, t, h, w, c) float32 in [0, 1]; t = num_frame, c = num_in_ch, h and w
        multiples of ``size_multiple(cfg)`` (4, or 16 with hr_in). h, w may be dynamic.
      cfg: the ``model`` config section (dict).
      scope, reuse: the outer variable scope and its reuse flag (True to share weights).
      compute_dtype: tf.float32, or tf.bfloat16 for mixed precision (edvr.precision): the
        network between the input frames and the output runs in bfloat16 on float32 master
        variables; frames, the bilinear base and the output stay float32.
    Returns:
      (output, endpoints). output: (b, 4h, 4w, c) (or (b, h, w, c) with hr_in), the
      restored centre frame. endpoints: OrderedDict with 'features' ([l1, l2, l3] of
      (b*t, ...)), 'aligned' (b, t, h', w', f), 'fused' (b, h', w', f), 'residual' (the
      reconstruction output before the base is added), 'dcn_offsets' (OrderedDict
      'l3', 'l2', 'l1', 'cascading' -> (b*t, h_level, w_level, 2 * G * 9), dx block then dy
      block), where h' = h (or h / 4 with hr_in).
    """
    t, c = int(frames.shape[1]), int(frames.shape[4])
    if t != cfg['num_frame'] or c != cfg['num_in_ch']:
        raise ValueError(
            f'frames must be (b, t={cfg["num_frame"]}, h, w, c={cfg["num_in_ch"]}) '
            f'for this config, got shape {frames.shape}'
        )
    with _model_scope(scope, reuse, compute_dtype):
        b, h, w = dim(frames, 0), dim(frames, 2), dim(frames, 3)
        lr = tf.cast(frames, compute_dtype)  # no op in float32
        feats = feature_extraction(tf.reshape(lr, [-1, h, w, c]), cfg)  # frames in the batch
        output, endpoints = _restore_from_features(
            feats, frames[:, center_frame_index(cfg)], b, cfg
        )
    return output, endpoints


def _model_scope(scope, reuse, compute_dtype):
    """The model's variable scope; in bfloat16 its variables are float32 masters read through
    a Cast (edvr.precision.master_variable_getter)."""
    mixed = tf.as_dtype(compute_dtype) != tf.float32
    return tf.compat.v1.variable_scope(
        scope, reuse=reuse, custom_getter=master_variable_getter if mixed else None
    )


def build_frame_features(frames, cfg, scope='edvr', reuse=None, compute_dtype=tf.float32):
    """The per-frame half of ``build_edvr``: each frame's [l1, l2, l3] features.

    A frame's features do not depend on its neighbours, so a sliding window can compute them
    once per frame and feed ``build_window_from_features`` from a cache (edvr.model.feature_cache).
    frames: (n, h, w, c), h and w multiples of ``size_multiple(cfg)``.
    Returns [l1, l2, l3]: (n, h', w', f), (n, h'/2, w'/2, f), (n, h'/4, w'/4, f), h' = h (h / 4
    with hr_in), the same variables (pre-deblur included) as ``build_edvr`` in ``scope``.
    """
    with _model_scope(scope, reuse, compute_dtype):  # the features are in compute_dtype
        return feature_extraction(tf.cast(frames, compute_dtype), cfg)


def build_window_from_features(feats, center_frame, cfg, scope='edvr', reuse=None):
    """The per-window half of ``build_edvr``: PCD alignment, fusion and reconstruction.

    feats: [l1, l2, l3] of (b * t, h', w', f) ... (b * t, h'/4, w'/4, f), frame-major within
      each window (the rows of ``build_frame_features`` for the window's frames, in order).
    center_frame: (b, h, w, c) the window's reference frame (the base the residual is added to).
    Returns (output, endpoints) as ``build_edvr`` (without 'features' computed here).
    """
    with _model_scope(scope, reuse, feats[0].dtype):  # computes in the features' dtype
        return _restore_from_features(feats, center_frame, dim(center_frame, 0), cfg)


def _restore_from_features(feats, base, b, cfg):
    """Alignment, fusion, reconstruction and the upsampled base; inside the model's scope."""
    t, num_feat, center = cfg['num_frame'], cfg['num_feat'], center_frame_index(cfg)
    endpoints = collections.OrderedDict()
    endpoints['features'] = feats

    # Every frame, the reference included, is aligned to the reference.
    ref_feats = []
    for feat in feats:
        fh, fw = dim(feat, 1), dim(feat, 2)
        per_clip = tf.reshape(feat, [b, t, fh, fw, num_feat])
        ref = tf.tile(per_clip[:, center : center + 1], [1, t, 1, 1, 1])
        ref_feats.append(tf.reshape(ref, [-1, fh, fw, num_feat]))
    aligned, offsets = pcd_alignment(feats, ref_feats, num_feat, cfg['deformable_groups'])
    aligned = tf.reshape(aligned, [b, t, dim(aligned, 1), dim(aligned, 2), num_feat])
    endpoints['aligned'] = aligned
    endpoints['dcn_offsets'] = offsets

    if cfg['with_tsa']:
        fused = tsa_fusion(aligned, center, num_feat)
    else:
        fused = plain_fusion(aligned, num_feat)
    endpoints['fused'] = fused

    residual = tf.cast(reconstruction(fused, cfg), tf.float32)  # no op in float32
    endpoints['residual'] = residual
    if not cfg['hr_in']:
        base = upsample_bilinear(base, SCALE)
    return residual + base, endpoints
