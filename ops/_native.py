"""Native backend: loads the compiled op library (ops/_edvr_ops.so, built by
`python setup.py build_ext --inplace`) and registers its gradients.

Second derivatives are not supported: the gradient ops have no gradients.

EDVR_OPS_LIBRARY, when set, names another build of the library to load instead
(`make test-asan` points it at the AddressSanitizer build in build-asan/).
"""

import os

import tensorflow as tf

LIBRARY_PATH = os.environ.get("EDVR_OPS_LIBRARY") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_edvr_ops.so"
)
_library = None


def load():
    """Loads the op library once; raises with the reason and the fix when it cannot."""
    global _library
    if _library is None:
        if not os.path.exists(LIBRARY_PATH):
            raise FileNotFoundError(
                f"native op library {LIBRARY_PATH} is not built; "
                f"run `python setup.py build_ext --inplace`"
            )
        _library = tf.load_op_library(LIBRARY_PATH)
    return _library


def _geometry_attrs(geo):
    return dict(
        ksize=[geo.kernel_h, geo.kernel_w],
        strides=[geo.stride_h, geo.stride_w],
        pads=[geo.pad_top, geo.pad_bottom, geo.pad_left, geo.pad_right],
        dilations=[geo.dilation_h, geo.dilation_w],
        deformable_groups=geo.deformable_groups,
        modulated=geo.modulated,
    )


def deformable_offsets(x, offsets, geo, name=None):
    return load().edvr_deformable_offsets(x, offsets, name=name, **_geometry_attrs(geo))


def deform_conv2d(x, offsets, filters, geo, name=None):
    """The fused deformable convolution (one convolution group, no bias)."""
    return load().edvr_deform_conv2d(x, offsets, filters, name=name, **_geometry_attrs(geo))


def bilinear_sample(x, coords, name=None):
    return load().edvr_bilinear_sample(x, coords, name=name)


@tf.RegisterGradient("EdvrDeformableOffsets")
def _deformable_offsets_grad(op, grad):
    return load().edvr_deformable_offsets_grad(grad, *op.inputs, **_op_geometry_attrs(op))


@tf.RegisterGradient("EdvrDeformConv2D")
def _deform_conv2d_grad(op, grad):
    return load().edvr_deform_conv2d_grad(grad, *op.inputs, **_op_geometry_attrs(op))


def _op_geometry_attrs(op):
    return {
        a: op.get_attr(a)
        for a in ("ksize", "strides", "pads", "dilations", "deformable_groups", "modulated")
    }


@tf.RegisterGradient("EdvrBilinearSample")
def _bilinear_sample_grad(op, grad):
    return load().edvr_bilinear_sample_grad(grad, op.inputs[0], op.inputs[1])
