"""EDVR_OPS_NPU_DEFORMABLE=builtin: with the npu backend, deformable_offsets calls CANN's
built-in DeformableOffsets through npu_bridge where its limits allow, else keeps our op.

The adapter is a stand-in (the real one needs CANN + TF 1.15): its op library records the
attributes it is called with and computes with our reference backend after mapping them back,
so a wrong mapping shows up both in the recorded attributes and in the values, which are
checked against the float64 NumPy reference.
"""

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _npu_builtin, numpy_reference, reference

from .conftest import require_native, tolerance


class FakeAdapterOps:
    """npu_bridge.helper.helper.get_gen_ops() of the stand-in: DeformableOffsets and its grad."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def _reference(
        x, offsets, strides, pads, ksize, dilations, data_format, deformable_groups, modulated
    ):
        assert data_format == "NHWC"
        return reference.deformable_offsets(
            x, offsets, ksize, strides[1:3], pads, dilations[1:3], deformable_groups, modulated
        )

    def deformable_offsets(
        self,
        x,
        offsets,
        strides,
        pads,
        ksize,
        dilations=(1, 1, 1, 1),
        data_format="NHWC",
        deformable_groups=1,
        modulated=True,
        name=None,
    ):
        attrs = dict(
            strides=strides,
            pads=pads,
            ksize=ksize,
            dilations=dilations,
            data_format=data_format,
            deformable_groups=deformable_groups,
            modulated=modulated,
        )
        self.calls.append(("DeformableOffsets", x.dtype, attrs))
        return tf.identity(self._reference(x, offsets, **attrs), name=name)

    def deformable_offsets_grad(
        self,
        grad,
        x,
        offsets,
        strides,
        pads,
        ksize,
        dilations=(1, 1, 1, 1),
        data_format="NHWC",
        deformable_groups=1,
        modulated=True,
        name=None,
    ):
        attrs = dict(
            strides=strides,
            pads=pads,
            ksize=ksize,
            dilations=dilations,
            data_format=data_format,
            deformable_groups=deformable_groups,
            modulated=modulated,
        )
        self.calls.append(("DeformableOffsetsGrad", x.dtype, attrs))
        y = self._reference(x, offsets, **attrs)
        return tuple(tf.compat.v1.gradients(y, [x, offsets], grad_ys=grad))


class OldAdapterOps:
    """An adapter from before DeformableOffsets was added."""


@pytest.fixture
def adapter(monkeypatch, select_backend):
    """The npu backend with the built-in selected, against a stand-in npu_bridge."""
    require_native()
    fake = FakeAdapterOps()
    modules = {
        "npu_bridge": {},
        "npu_bridge.helper": {},
        "npu_bridge.helper.helper": {"get_gen_ops": lambda: fake},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    select_backend("npu")
    monkeypatch.setenv("EDVR_OPS_NPU_DEFORMABLE", "builtin")
    monkeypatch.setattr(_npu_builtin, "_warned_reasons", set())
    return fake


def inputs(dtype, n=2, size=(7, 6), channels=8, groups=1, ksize=(3, 2), out=(3, 7), seed=0):
    """x [n, h, w, c] and offsets [n, ho, wo, 3*G*K]: offsets in (-2, 2), mask in (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + size + (channels,)).astype(dtype)
    gk = groups * ksize[0] * ksize[1]
    shifts = rng.uniform(-2, 2, (n,) + out + (2 * gk,))
    mask = rng.uniform(0, 1, (n,) + out + (gk,))
    return x, np.concatenate([shifts, mask], axis=-1).astype(dtype)


# ksize (3, 2), strides (2, 1), pads (1, 0, 2, 1), dilations (1, 2) on 7x6: Ho 3, Wo 7.
GEOMETRY = dict(ksize=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), dilations=(1, 2))
EXPECTED_ATTRS = dict(
    strides=[1, 2, 1, 1],
    pads=[1, 0, 2, 1],
    ksize=[3, 2],
    dilations=[1, 1, 2, 1],
    data_format="NHWC",
    deformable_groups=1,
    modulated=True,
)


def run_graph(x, offsets, **kwargs):
    """deformable_offsets and the gradients of sum(y * weights); returns (y, dx, doffsets,
    op types of the graph)."""
    with tf.Graph().as_default() as graph:
        x_t, offsets_t = tf.constant(x), tf.constant(offsets)
        y = ops.deformable_offsets(x_t, offsets_t, **kwargs)
        weights = tf.constant(np.random.default_rng(9).standard_normal(y.shape).astype(x.dtype))
        grads = tf.compat.v1.gradients(tf.reduce_sum(y * weights), [x_t, offsets_t])
        with tf.compat.v1.Session() as sess:
            values = sess.run([y] + grads)
    return values + [{op.type for op in graph.get_operations()}]


def test_builtin_gets_spec_geometry_as_its_attributes(adapter):
    x, offsets = inputs(np.float32)
    y, _, _, types_used = run_graph(x, offsets, **GEOMETRY)
    forward = [c for c in adapter.calls if c[0] == "DeformableOffsets"]
    assert forward == [("DeformableOffsets", tf.float32, EXPECTED_ATTRS)]
    assert "EdvrDeformableOffsets" not in types_used
    expected = numpy_reference.deformable_offsets(x, offsets, **GEOMETRY)
    np.testing.assert_allclose(y, expected, *tolerance(np.float32))


def test_gradient_is_the_builtin_grad_op_and_matches_ours(adapter, select_backend):
    x, offsets = inputs(np.float32)
    _, dx, doffsets, types_used = run_graph(x, offsets, **GEOMETRY)
    assert [c for c in adapter.calls if c[0] == "DeformableOffsetsGrad"] == [
        ("DeformableOffsetsGrad", tf.float32, EXPECTED_ATTRS)
    ]
    assert "EdvrDeformableOffsetsGrad" not in types_used
    select_backend("native")  # our gradient kernel as the oracle
    _, dx_ours, doffsets_ours, types_used = run_graph(x, offsets, **GEOMETRY)
    assert "EdvrDeformableOffsetsGrad" in types_used
    np.testing.assert_allclose(dx, dx_ours, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(doffsets, doffsets_ours, rtol=1e-5, atol=1e-5)


def test_float16_goes_to_the_builtin(adapter):
    x, offsets = inputs(np.float16)
    with tf.Graph().as_default():
        ops.deformable_offsets(tf.constant(x), tf.constant(offsets), **GEOMETRY)
    assert adapter.calls == [("DeformableOffsets", tf.float16, EXPECTED_ATTRS)]


@pytest.mark.parametrize(
    "groups, dtype, modulated, reason",
    [
        (8, np.float32, True, r"deformable_groups=8 \(it supports 1 only\)"),
        (1, np.float64, True, r"dtype float64 \(it supports float16 and float32 only\)"),
        (1, np.float32, False, r"modulated=False \(it supports modulated=True only\)"),
    ],
)
def test_beyond_its_limits_our_op_is_kept_with_one_warning(
    adapter, groups, dtype, modulated, reason
):
    x, offsets = inputs(dtype, channels=16, groups=groups)
    kwargs = dict(GEOMETRY, deformable_groups=groups, modulated=modulated)
    with pytest.warns(
        RuntimeWarning,
        match=r"EDVR_OPS_NPU_DEFORMABLE=builtin, but CANN's "
        r"DeformableOffsets cannot take " + reason,
    ):
        y, dx, _, types_used = run_graph(x, offsets, **kwargs)
    assert adapter.calls == []
    assert {"EdvrDeformableOffsets", "EdvrDeformableOffsetsGrad"} <= types_used
    expected = numpy_reference.deformable_offsets(x, offsets, **kwargs)
    np.testing.assert_allclose(y, expected, *tolerance(dtype))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same limit is not reported twice
        run_graph(x, offsets, **kwargs)


def test_an_adapter_without_the_op_keeps_ours(adapter, monkeypatch):
    monkeypatch.setattr(sys.modules["npu_bridge.helper.helper"], "get_gen_ops", OldAdapterOps)
    x, offsets = inputs(np.float32)
    with pytest.warns(
        RuntimeWarning,
        match=r"cannot take this npu_bridge has no "
        r"DeformableOffsets op \(it needs a recent CANN\)",
    ):
        *_, types_used = run_graph(x, offsets, **GEOMETRY)
    assert "EdvrDeformableOffsets" in types_used


def test_custom_is_the_default(adapter, monkeypatch):
    monkeypatch.delenv("EDVR_OPS_NPU_DEFORMABLE")
    *_, types_used = run_graph(*inputs(np.float32), **GEOMETRY)
    assert adapter.calls == [] and "EdvrDeformableOffsets" in types_used


def test_unknown_choice_is_named(adapter, monkeypatch):
    monkeypatch.setenv("EDVR_OPS_NPU_DEFORMABLE", "tik")
    x, offsets = inputs(np.float32)
    with pytest.raises(
        ValueError,
        match=r"EDVR_OPS_NPU_DEFORMABLE must be one of "
        r"\('custom', 'builtin'\), got 'tik'",
    ):
        ops.deformable_offsets(x, offsets, **GEOMETRY)


def test_missing_adapter_op_library_is_named(adapter, monkeypatch):
    monkeypatch.setitem(sys.modules, "npu_bridge.helper.helper", None)
    with pytest.raises(
        RuntimeError,
        match=r"EDVR_OPS_NPU_DEFORMABLE=builtin needs "
        r"npu_bridge.helper.helper of CANN's TensorFlow "
        r"adapter, which cannot be imported",
    ):
        ops.deformable_offsets(*inputs(np.float32), **GEOMETRY)
