"""Convolution FLOPs of a TF graph, counted from static shapes: the numerator of the
FLOP floor that bench.report sets model step and frame times against.

Convention: one multiply-add is 2 FLOPs. A convolution with output (n, ho, wo, cout) and
filter (kh, kw, cin / groups, cout) costs ``2 * n * ho * wo * cout * kh * kw * cin / groups``;
each of its two backward ops (Conv2DBackpropInput, Conv2DBackpropFilter) costs the same, so a
training step counts about 3x the forward FLOPs. A deformable convolution counts as the
convolution over its sampled columns (the sampling itself is not a FLOP of the floor): on the
native backend it is the fused ``EdvrDeformConv2D``, whose gradient op does both backward
products (columns' and filters' gradients) and so counts twice; otherwise it is
``EdvrDeformableOffsets`` followed by a Conv2D over the columns, counted as that Conv2D.
"""

import collections

import numpy as np

FUSED_DCN, FUSED_DCN_GRAD = 'EdvrDeformConv2D', 'EdvrDeformConv2DGrad'
FORWARD_TYPES = ('Conv2D', 'DepthwiseConv2dNative', FUSED_DCN)
BACKWARD_TYPES = (
    'Conv2DBackpropInput',
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    FUSED_DCN_GRAD,
)
CONV_TYPES = FORWARD_TYPES + BACKWARD_TYPES


def _static(tensor, op, what):
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        raise ValueError(
            f'{op.type} {op.name}: {what} has shape {shape}; counting FLOPs needs '
            f'static shapes (build the graph with fully defined input shapes)'
        )
    return [int(d) for d in shape]


def _nhwc(op, shape):
    data_format = op.get_attr('data_format')
    if data_format in (b'NCHW', 'NCHW'):
        n, c, h, w = shape
        return [n, h, w, c]
    return shape


def conv_flops(op):
    """FLOPs of one convolution op (forward or backward), 0 for any other op type.

    Conv2D (x, filter) -> y; Conv2DBackpropInput (sizes, filter, dy);
    Conv2DBackpropFilter (x, sizes, dy); the depthwise ops likewise, filter (kh, kw, c, mult);
    EdvrDeformConv2D (x, offsets, filters) -> y; EdvrDeformConv2DGrad (dy, x, offsets, filters).
    """
    if op.type not in CONV_TYPES:
        return 0
    if op.type in (FUSED_DCN, FUSED_DCN_GRAD):
        forward = op.type == FUSED_DCN
        n, ho, wo, cout = _static(op.outputs[0] if forward else op.inputs[0], op, 'the output')
        kh, kw, cin, _ = _static(op.inputs[2 if forward else 3], op, 'the filters')
        return (1 if forward else 2) * 2 * n * ho * wo * cout * kh * kw * cin
    if op.type in FORWARD_TYPES:
        out = _nhwc(op, _static(op.outputs[0], op, 'the output'))
        kh, kw, cin, mult = _static(op.inputs[1], op, 'the filter')
    elif op.type.endswith('BackpropInput'):
        out = _nhwc(op, _static(op.inputs[2], op, 'the output gradient'))
        kh, kw, cin, mult = _static(op.inputs[1], op, 'the filter')
    else:  # BackpropFilter: its output has the filter's shape
        out = _nhwc(op, _static(op.inputs[2], op, 'the output gradient'))
        kh, kw, cin, mult = _static(op.outputs[0], op, 'the filter gradient')
    n, ho, wo, cout = out
    if op.type.startswith('Depthwise'):
        return 2 * n * ho * wo * cout * kh * kw  # cout = cin * mult, one input channel each
    return 2 * n * ho * wo * cout * kh * kw * cin


def ancestors(fetches):
    """Every op that running ``fetches`` (tensors or ops) executes: data and control inputs,
    transitively. Ops of the graph that the fetches do not need are left out."""
    stack = [getattr(f, 'op', f) for f in fetches]
    seen = {}
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return list(seen.values())


def graph_conv_flops(fetches):
    """Convolution FLOPs needed to run ``fetches``, by op type: OrderedDict type -> FLOPs,
    plus the totals 'forward', 'backward' and 'total'."""
    by_type = collections.Counter()
    for op in ancestors(fetches):
        if op.type in CONV_TYPES:
            by_type[op.type] += conv_flops(op)
    result = collections.OrderedDict(sorted(by_type.items()))
    result['forward'] = int(sum(by_type[t] for t in FORWARD_TYPES))
    result['backward'] = int(sum(by_type[t] for t in BACKWARD_TYPES))
    result['total'] = result['forward'] + result['backward']
    return result


def conv2d_flops(shape, kernel_size=3, out_channels=None):
    """FLOPs of a stride-1 'SAME' conv of an NHWC ``shape``: 2 * n * h * w * k^2 * cin * cout."""
    n, h, w, c = shape
    return int(
        2 * np.prod([n, h, w, kernel_size, kernel_size, c, out_channels or c], dtype=np.int64)
    )
