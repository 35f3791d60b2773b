"""EDVR in TF1-style graph code, one module per paper component.

``build_edvr(frames, model_cfg)`` assembles feature extraction (with the optional
pre-deblur module), PCD alignment, TSA fusion and reconstruction; see its docstring.
``build_frame_features`` and ``build_window_from_features`` are its two halves, for a
sliding window that computes each frame's features once (``feature_cache``).
"""

from edvr.model.edvr import (
    build_edvr,
    build_frame_features,
    build_window_from_features,
    center_frame_index,
    output_scale,
    size_multiple,
)

__all__ = [
    'build_edvr',
    'build_frame_features',
    'build_window_from_features',
    'center_frame_index',
    'output_scale',
    'size_multiple',
]
