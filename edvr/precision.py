"""Mixed precision: what the config's ``train.mixed_precision`` (or ``--precision``) means.

- NPU (edvr.npu): the graph stays float32 and CANN's ``allow_mix_precision`` runs it in float16,
  with loss scaling.
- CPU: the model computes in bfloat16 (convolutions, the deformable ops, activations) with
  float32 master variables, where the CPU has native bfloat16 (``avx512_bf16`` or ``amx_bf16``
  in /proc/cpuinfo); elsewhere oneDNN would emulate it, slower than float32, so it warns once
  and stays float32. The input frames, the bilinear base, the output, the loss and the
  optimizer stay float32; inside the deformable ops positions and sampling weights are
  float32 (kernels/cpu/bfloat16.h). bfloat16 has float32's exponent range: no loss scaling.

Casts are explicit (``build_edvr(..., compute_dtype=tf.bfloat16)``) rather than grappler's
auto-mixed-precision pass, so the graph is the same on TF 1.15 and TF 2.x and our ops sit
between bfloat16 convolutions with no Cast around them.
"""

import argparse
import warnings

import tensorflow as tf

PRECISIONS = ('mixed', 'fp32')
NATIVE_BFLOAT16_FLAGS = ('avx512_bf16', 'amx_bf16')
_warned = False


def cpu_flags(cpuinfo='/proc/cpuinfo'):
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty if unreadable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bfloat16(cpuinfo='/proc/cpuinfo'):
    """Whether the CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    return bool(cpu_flags(cpuinfo) & set(NATIVE_BFLOAT16_FLAGS))


def compute_dtype(mixed_precision, device='cpu', cpuinfo='/proc/cpuinfo'):
    """The model's compute dtype: bfloat16 for mixed precision on a CPU with native bfloat16,
    else float32 (with one warning when mixed precision was asked for on a CPU without it).
    On the NPU the graph is float32; the device's own pass lowers it to float16."""
    global _warned
    if not mixed_precision or device != 'cpu':
        return tf.float32
    if cpu_has_native_bfloat16(cpuinfo):
        return tf.bfloat16
    if not _warned:
        warnings.warn(
            'mixed precision asked for (train.mixed_precision or --precision mixed), '
            'but this CPU has no native bfloat16 (none of %s in %s); computing in '
            'float32' % (', '.join(NATIVE_BFLOAT16_FLAGS), cpuinfo),
            RuntimeWarning,
            stacklevel=2,
        )
        _warned = True
    return tf.float32


def add_precision_flag(parser):
    """Adds --precision mixed|fp32 (overriding the config's train.mixed_precision)."""
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default=None,
        help='mixed: bfloat16 compute on CPUs with native bfloat16 (float16 on '
        'the NPU); fp32: float32 throughout (default: '
        'train.mixed_precision of the config)',
    )


def mixed_from_flags(args, train_cfg):
    """train.mixed_precision with --precision applied."""
    precision = getattr(args, 'precision', None)
    if precision is None:
        return bool(train_cfg['mixed_precision'])
    if precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(
            '--precision must be one of %s, got %r' % (PRECISIONS, precision)
        )
    return precision == 'mixed'


def master_variable_getter(getter, name, *args, **kwargs):
    """A variable-scope custom getter: a bfloat16 variable is created as float32 (the master
    copy the optimizer updates and checkpoints hold, same names as in float32 runs) and read
    through a Cast to bfloat16."""
    dtype = kwargs.get('dtype')
    if dtype is not None and tf.as_dtype(dtype) == tf.bfloat16:
        kwargs['dtype'] = tf.float32
        return tf.cast(getter(name, *args, **kwargs), tf.bfloat16)
    return getter(name, *args, **kwargs)
