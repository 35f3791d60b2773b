"""EDVR in TF1-style graph code, one module per paper component.

``build_edvr(frames, model_cfg)`` assembles feature extraction (with the optional
pre-deblur module), PCD alignment, TSA fusion and reconstruction; see its docstring.
"""
from edvr.model.edvr import build_edvr, center_frame_index, output_scale, size_multiple
from edvr.model.layers import DCN_OFFSETS_COLLECTION

__all__ = ['build_edvr', 'center_frame_index', 'output_scale', 'size_multiple',
           'DCN_OFFSETS_COLLECTION']
