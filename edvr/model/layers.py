"""Shared builders for the EDVR graph: PyTorch-compatible convs, pooling, resizing, DCN pack.

Every builder creates its variables with ``tf.compat.v1.get_variable`` under its own
variable scope, names ``kernel`` ([kh, kw, in, out]) and ``bias`` ([out]). Padding follows
PyTorch (symmetric ``(k - 1) // 2`` on each side), which for stride 2 differs from TF's
'SAME', so the pretrained BasicSR weights see the same pixels.
"""

import tensorflow as tf

import ops

LRELU_SLOPE = 0.1


def dim(tensor, axis):
    """Static size of ``axis`` when known, else a scalar tensor."""
    static = tensor.shape[axis]
    return tf.shape(tensor)[axis] if static is None else int(static)


@tf.custom_gradient
def lrelu(x):
    """LeakyReLU with BasicSR's slope 0.1.

    The gradient is taken from the output (its sign is the input's, the slope being
    positive) rather than, as TF's, from the input: the same values. The input (a conv's
    BiasAdd) then has one consumer, so grappler's remapper fuses conv, bias and LeakyReLU in
    training too; with TF's gradient the remapper fails on the training graph ("remapper
    failed: ... fanout ... LeakyReluGrad exist for missing node ... BiasAdd") and every
    LeakyReLU runs on its own (2% of an EDVR-M training step).
    """
    y = tf.nn.leaky_relu(x, alpha=LRELU_SLOPE)

    def grad(dy):
        return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=LRELU_SLOPE)

    return y, grad


def sigmoid(x):
    """The logistic sigmoid in ``x``'s dtype. A bfloat16 ``x`` is computed in float32 and rounded
    once: TF's CPU Sigmoid for bfloat16 (Eigen) is about 7x slower than float32's, and the two
    Casts plus the float32 Sigmoid take a quarter of its time (a DCN mask of (5, 180, 320, 72),
    2-core AMD EPYC with AVX512_BF16, TF 2.21; docs/mixed_precision.md)."""
    if x.dtype == tf.bfloat16:
        return tf.cast(tf.sigmoid(tf.cast(x, tf.float32)), tf.bfloat16)
    return tf.sigmoid(x)


def _default_kernel_init():
    """Kaiming normal (fan_in) for convs followed by LeakyReLU(0.1): variance
    2 / ((1 + 0.1^2) * fan_in), which keeps the signal's scale from layer to layer.

    Not PyTorch's nn.Conv2d default (BasicSR's), variance 1 / (3 * fan_in): each conv and
    LeakyReLU then shrinks the signal about 2.5x, and through EDVR's ~20 convs the residual
    at initialisation is 1e-4 of the features' scale. Long REDS runs do not notice; the short
    demo (EDVR-tiny, 1000 steps) sat at its bilinear base for a random 500 to over 1000
    steps and ended below bicubic for one seed in three (docs/mixed_precision.md, Quality).
    Converted BasicSR weights replace it, so parity is unaffected. The PCD offset branch
    keeps PyTorch's init (``offset_branch_kernel_init``).
    """
    return tf.compat.v1.variance_scaling_initializer(
        scale=2.0 / (1.0 + LRELU_SLOPE**2), mode='fan_in', distribution='untruncated_normal'
    )


def offset_branch_kernel_init():
    """PyTorch's nn.Conv2d default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for the convs that
    predict the DCN offsets from features (not on the path of the image signal).

    With the Kaiming init there, the offset features are O(1) and the offsets, which start
    at zero, moved 5-10x faster over the first steps; in one demo run of six (seed 2,
    bfloat16) the l1 offsets passed 70 pixels by step 80 and thousands later (EDVR's known
    offset explosion): every sample fell outside the 32-pixel crop, no gradient could bring
    them back, and the network stayed at its bilinear base. The small init keeps the offset
    features, and so the offsets' early speed, small.
    """
    return tf.compat.v1.variance_scaling_initializer(
        scale=1.0 / 3.0, mode='fan_in', distribution='uniform'
    )


def residual_kernel_init():
    """BasicSR's residual-block init: Kaiming normal (fan_in) scaled by 0.1."""
    return tf.compat.v1.variance_scaling_initializer(
        scale=0.02, mode='fan_in', distribution='untruncated_normal'
    )


def conv2d(
    x, filters, kernel_size=3, stride=1, name='conv', kernel_initializer=None, bias_initializer=None
):
    """Conv with PyTorch padding: x (n, h, w, c) -> (n, ceil(h / stride), ceil(w / stride), filters)."""
    in_channels = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name):
        kernel = tf.compat.v1.get_variable(
            'kernel',
            [kernel_size, kernel_size, in_channels, filters],
            dtype=x.dtype,
            initializer=kernel_initializer or _default_kernel_init(),
        )
        bias = tf.compat.v1.get_variable(
            'bias',
            [filters],
            dtype=x.dtype,
            initializer=bias_initializer or tf.compat.v1.zeros_initializer(),
        )
        pad = (kernel_size - 1) // 2
        if stride == 1:
            padding = 'SAME'  # odd kernels, stride 1: 'SAME' pads `pad` on each side
        else:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            padding = 'VALID'
        y = tf.nn.conv2d(x, kernel, [1, stride, stride, 1], padding)
        return tf.nn.bias_add(y, bias)


def residual_block(x, name):
    """Conv-ReLU-Conv plus identity, no BN: (n, h, w, c) -> (n, h, w, c)."""
    channels = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name):
        y = conv2d(x, channels, name='conv1', kernel_initializer=residual_kernel_init())
        y = conv2d(tf.nn.relu(y), channels, name='conv2', kernel_initializer=residual_kernel_init())
        return x + y


def residual_blocks(x, num_blocks, name_prefix='resblock'):
    """``num_blocks`` residual blocks in sequence, scopes ``{name_prefix}_{i}``."""
    for i in range(num_blocks):
        x = residual_block(x, f'{name_prefix}_{i}')
    return x


def max_pool_3x3_s2(x):
    """PyTorch MaxPool2d(3, stride=2, padding=1): padding never wins the max."""
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=x.dtype.min)
    return tf.nn.max_pool2d(x, 3, 2, 'VALID')


def avg_pool_3x3_s2(x):
    """PyTorch AvgPool2d(3, stride=2, padding=1): zero padding counts in the mean."""
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.nn.avg_pool2d(x, 3, 2, 'VALID')


def upsample_bilinear(x, factor=2):
    """Bilinear resize by ``factor`` with PyTorch's align_corners=False (half-pixel centres)."""
    size = [dim(x, 1) * factor, dim(x, 2) * factor]
    y = tf.compat.v1.image.resize_bilinear(x, size, align_corners=False, half_pixel_centers=True)
    return tf.cast(y, x.dtype)  # ResizeBilinear returns float32 for bfloat16 input too


def pixel_shuffle(x, factor=2):
    """(n, h, w, c * factor^2) -> (n, h * factor, w * factor, c).

    Uses TF's depth_to_space channel order (i * factor + j) * c + ch; the converter permutes
    PyTorch weights (order ch * factor^2 + i * factor + j) to it.
    """
    return tf.nn.depth_to_space(x, factor)


def dcn_pack(x, condition, filters, deformable_groups, name='dcn'):
    """Modulated deformable 3x3 conv whose offsets and mask come from ``condition``.

    x: (n, h, w, c) features to sample; condition: (n, h, w, c') features that predict
    the offsets. Scope ``{name}/offset_mask_conv`` is the conv producing 3*G*9 channels in
    the ``ops`` layout (dx block, dy block, mask logits; channel g*9 + k); the mask gets
    its sigmoid here. The (dx, dy) offsets, (n, h, w, 2*G*9), are returned for monitoring
    (the model's ``endpoints['dcn_offsets']``).

    Returns (y (n, h, w, filters), offsets (n, h, w, 2*G*9)).
    """
    kernel_points = 9
    in_channels = int(x.shape[-1])
    with tf.compat.v1.variable_scope(name):
        # Zero init: the DCN starts as a plain conv (BasicSR does the same).
        raw = conv2d(
            condition,
            3 * deformable_groups * kernel_points,
            name='offset_mask_conv',
            kernel_initializer=tf.compat.v1.zeros_initializer(),
        )
        # One Split rather than two strided slices: the gradient of Split is a concat, while
        # each StridedSliceGrad zero-fills and copies a full-size tensor (5% of an EDVR-M
        # training step).
        offsets, mask_logits = tf.split(
            raw, [2 * deformable_groups * kernel_points, deformable_groups * kernel_points], -1
        )
        mask = sigmoid(mask_logits)
        kernel = tf.compat.v1.get_variable(
            'kernel',
            [3, 3, in_channels, filters],
            dtype=x.dtype,
            initializer=_default_kernel_init(),
        )
        bias = tf.compat.v1.get_variable(
            'bias', [filters], dtype=x.dtype, initializer=tf.compat.v1.zeros_initializer()
        )
        y = ops.deform_conv2d(
            x,
            tf.concat([offsets, mask], axis=-1),
            kernel,
            bias,
            strides=(1, 1),
            pads=(1, 1, 1, 1),
            deformable_groups=deformable_groups,
        )
        return y, offsets
