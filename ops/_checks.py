"""Argument checks shared by every backend: normalise the geometry arguments and
reject bad input with a message naming the argument, what it got and what it expected.

Checks use static shapes only; dimensions unknown at graph-construction time are
checked by the native kernels at run time.
"""

import collections

Geometry = collections.namedtuple(
    "Geometry",
    "kernel_h kernel_w stride_h stride_w pad_top pad_bottom pad_left pad_right "
    "dilation_h dilation_w deformable_groups modulated",
)


def _int_tuple(op, name, value, length, minimum):
    try:
        values = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{op}: {name} must be a sequence of {length} integers, got {value!r}")
    if len(values) != length or any(v < minimum for v in values):
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{op}: {name} must be {length} {kind} integers, got {value!r}")
    return values


def geometry(op, ksize, strides, pads, dilations, deformable_groups, modulated=True):
    """Checks and normalises the geometry arguments of deformable_offsets."""
    kernel_h, kernel_w = _int_tuple(op, "ksize", ksize, 2, 1)
    stride_h, stride_w = _int_tuple(op, "strides", strides, 2, 1)
    top, bottom, left, right = _int_tuple(op, "pads (top, bottom, left, right)", pads, 4, 0)
    dilation_h, dilation_w = _int_tuple(op, "dilations", dilations, 2, 1)
    if int(deformable_groups) < 1:
        raise ValueError(f"{op}: deformable_groups must be >= 1, got {deformable_groups!r}")
    return Geometry(
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        top,
        bottom,
        left,
        right,
        dilation_h,
        dilation_w,
        int(deformable_groups),
        bool(modulated),
    )


def out_size(size, pad, kernel, dilation, stride):
    """Output length along one axis, or None when the kernel does not fit or size is unknown."""
    if size is None:
        return None
    span = dilation * (kernel - 1) + 1
    return None if size + pad < span else (size + pad - span) // stride + 1


def _dims(tensor):
    shape = tensor.shape
    return None if shape.ndims is None else [d if d is None else int(d) for d in shape.as_list()]


def deformable_offsets_shapes(op, x, offsets, geo):
    """Checks x [N, H, W, C] and offsets [N, Ho, Wo, 3*G*K]; returns (Ho, Wo), None if unknown."""
    x_dims, off_dims = _dims(x), _dims(offsets)
    if x_dims is not None and len(x_dims) != 4:
        raise ValueError(f"{op}: x must be rank 4 [N, H, W, C], got shape {x_dims}")
    if off_dims is not None and len(off_dims) != 4:
        raise ValueError(f"{op}: offsets must be rank 4 [N, Ho, Wo, 3*G*K], got shape {off_dims}")
    if x_dims is None:
        return None, None
    n, h, w, c = x_dims
    if c is not None and c % geo.deformable_groups:
        raise ValueError(
            f"{op}: x channels ({c}) must be divisible by deformable_groups "
            f"({geo.deformable_groups}); x has shape {x_dims}"
        )
    ho = out_size(h, geo.pad_top + geo.pad_bottom, geo.kernel_h, geo.dilation_h, geo.stride_h)
    wo = out_size(w, geo.pad_left + geo.pad_right, geo.kernel_w, geo.dilation_w, geo.stride_w)
    if (h is not None and ho is None) or (w is not None and wo is None):
        raise ValueError(
            f"{op}: kernel ({geo.kernel_h}x{geo.kernel_w} with dilation "
            f"{geo.dilation_h}x{geo.dilation_w}) is larger than the padded input of x "
            f"(x shape {x_dims}, pads {(geo.pad_top, geo.pad_bottom, geo.pad_left, geo.pad_right)})"
        )
    if off_dims is not None:
        expected = [n, ho, wo, 3 * geo.deformable_groups * geo.kernel_h * geo.kernel_w]
        if any(e is not None and g is not None and e != g for e, g in zip(expected, off_dims)):
            shown = ["?" if e is None else e for e in expected]
            raise ValueError(
                f"{op}: offsets must have shape [N, Ho, Wo, 3*G*K] = {shown} for x of "
                f"shape {x_dims}, got {off_dims}"
            )
    return ho, wo


def bilinear_sample_shapes(op, x, coords):
    """Checks x [N, H, W, C] and coords [N, ..., 2]."""
    x_dims, c_dims = _dims(x), _dims(coords)
    if x_dims is not None and len(x_dims) != 4:
        raise ValueError(f"{op}: x must be rank 4 [N, H, W, C], got shape {x_dims}")
    if c_dims is not None and (len(c_dims) < 2 or c_dims[-1] not in (None, 2)):
        raise ValueError(
            f"{op}: coords must have shape [N, ..., 2] holding (x, y), got shape {c_dims}"
        )
    if (
        x_dims is not None
        and c_dims is not None
        and None not in (x_dims[0], c_dims[0])
        and x_dims[0] != c_dims[0]
    ):
        raise ValueError(f"{op}: coords batch ({c_dims[0]}) must equal x batch ({x_dims[0]})")


def deform_conv2d_filters(op, x, filters, groups, bias):
    """Checks filters [kh, kw, C/groups, F] (and bias [F]); returns (kh, kw)."""
    f_dims = _dims(filters)
    if f_dims is None or len(f_dims) != 4 or None in f_dims[:2]:
        raise ValueError(
            f"{op}: filters must be rank 4 [kh, kw, C/groups, F] with known kh, kw, "
            f"got shape {f_dims}"
        )
    if int(groups) < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups!r}")
    x_dims = _dims(x)
    c = None if x_dims is None or len(x_dims) != 4 else x_dims[3]
    if c is not None:
        if c % groups:
            raise ValueError(f"{op}: x channels ({c}) must be divisible by groups ({groups})")
        if f_dims[2] is not None and f_dims[2] != c // groups:
            raise ValueError(
                f"{op}: filters must have shape [kh, kw, C/groups, F] with "
                f"C/groups = {c // groups}, got {f_dims}"
            )
    if f_dims[3] is not None and f_dims[3] % groups:
        raise ValueError(
            f"{op}: filters output channels ({f_dims[3]}) must be divisible by groups ({groups})"
        )
    if bias is not None:
        b_dims = _dims(bias)
        if b_dims is not None and (len(b_dims) != 1 or b_dims[0] not in (None, f_dims[3])):
            raise ValueError(f"{op}: bias must have shape [F] = [{f_dims[3]}], got {b_dims}")
    return f_dims[0], f_dims[1]
