"""EDVR_OPS_BACKEND=npu: the graph holds our Edvr* op types (which CANN's TF adapter maps
to the TBE kernels of kernels/tbe), and a missing npu_bridge is a clear error."""

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import ops

from .conftest import require_native


def test_missing_npu_bridge_is_named(monkeypatch, select_backend):
    select_backend("npu")
    monkeypatch.setitem(sys.modules, "npu_bridge", None)  # makes `import npu_bridge` fail
    with pytest.raises(
        RuntimeError,
        match=r"EDVR_OPS_BACKEND=npu needs CANN's TensorFlow "
        r"adapter \(npu_bridge\), which cannot be imported",
    ):
        ops.backend()


def test_npu_backend_emits_our_op_types(monkeypatch, select_backend):
    require_native()
    select_backend("npu")
    monkeypatch.setitem(sys.modules, "npu_bridge", types.ModuleType("npu_bridge"))
    assert ops.backend() == "npu"
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [2, 6, 6, 16])
        offsets = tf.compat.v1.placeholder(tf.float32, [2, 6, 6, 3 * 2 * 9])
        filters = tf.constant(np.zeros((3, 3, 16, 8), np.float32))
        y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=2)
        warped = ops.bilinear_sample(x, tf.compat.v1.placeholder(tf.float32, [2, 5, 2]))
        tf.compat.v1.gradients([y, warped], [x, offsets])
        types_used = {op.type for op in graph.get_operations()}
    assert {
        "EdvrDeformableOffsets",
        "EdvrDeformableOffsetsGrad",
        "EdvrBilinearSample",
        "EdvrBilinearSampleGrad",
    } <= types_used
    assert "DeformableOffsets" not in types_used  # npu_bridge's built-in stays untouched
