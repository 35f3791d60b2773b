"""The FLOP floor of the EDVR model benchmarks and the input pipeline's headroom, from the
minima of one run.

floor = convolution FLOPs of the work (bench.flops: forward, plus both backward ops for a
training step, each as costly as the forward conv, so about 3x) / the FLOP rate that
tf.nn.conv2d reaches on a [20, 64, 64, 64] 3x3 64 -> 64 convolution, timed between the
rounds of that work (``conv_rate`` of its entry), else in the run's own conv2d benchmark.
headroom = samples/s the input pipeline delivers / samples/s a training step consumes.
feature cache = a streamed frame's time (and conv FLOPs) with each frame's features computed
once / the same without the cache (the whole model per window), both from this run; and the
time ratio with each time multiplied by the conv2d rate timed between its own rounds, so that
load which slowed one benchmark more than the other cancels out (as in the op ratios).
"""

# Names the model benchmarks record under (bench/test_edvr_bench.py).
CONV_RATE, TRAIN_STEP, INFER_FRAME, INFER_FRAME_CACHED, INPUT_PIPELINE = (
    'conv2d rate',
    'train step',
    'infer frame',
    'infer frame cached',
    'input pipeline',
)
# (name recorded, summary key, table label)
MODEL_ITEMS = (
    (TRAIN_STEP, 'train_step', 'train step'),
    (INFER_FRAME, 'infer_frame', 'infer frame'),
    (INFER_FRAME_CACHED, 'infer_frame_cached', 'cached frame'),
)
# Mixed precision (bfloat16 on CPU), each recorded with the float32 rounds run beside it.
TRAIN_STEP_MIXED, INFER_FRAME_MIXED = 'train step mixed', 'infer frame mixed'
# Our mixed-precision frame, recorded with our float32 frame and OpenVINO's f32 and bf16 frames
# (bench.openvino_peer) run beside it, under these labels.
INFER_FRAME_OPENVINO = 'infer frame openvino'
OPENVINO_LABELS = ('ours fp32', 'openvino f32', 'openvino bf16')


def mixed_summary(results):
    """{'train_step' | 'infer_frame': {mixed_seconds, fp32_seconds, ratio}} for the mixed
    precision benchmarks in ``results``: each against the float32 rounds run beside it."""
    summary = {}
    for name, key in ((TRAIN_STEP_MIXED, 'train_step'), (INFER_FRAME_MIXED, 'infer_frame')):
        entry = results.get(name)
        if entry and entry.get('beside_seconds'):
            summary[key] = {
                'mixed_seconds': entry['seconds'],
                'fp32_seconds': entry['beside_seconds'],
                'ratio': entry['seconds'] / entry['beside_seconds'],
            }
    return summary


def format_mixed_table(summary):
    """Text lines of ``mixed_summary``."""
    lines = [
        'Mixed precision (bfloat16) against float32, rounds side by side (minimum, this run)',
        f'{"work":<14}{"fp32 s":>9}{"mixed s":>9}{"mixed/fp32":>12}',
    ]
    for key, label in (('train_step', 'train step'), ('infer_frame', 'infer frame')):
        if key in summary:
            item = summary[key]
            lines.append(
                f'{label:<14}{item["fp32_seconds"]:9.3f}{item["mixed_seconds"]:9.3f}'
                f'{item["ratio"]:11.2f}x'
            )
    return lines


def openvino_summary(results):
    """The OpenVINO peer against our frame, from the rounds run side by side: {'seconds':
    {'ours mixed', 'ours fp32', 'openvino f32', 'openvino bf16'}, 'ratios': {'ours mixed /
    openvino bf16', 'ours fp32 / openvino f32', 'ours mixed / ours fp32', 'openvino bf16 /
    openvino f32'}, 'openvino': version, 'setup_seconds'}; {'skipped': reason} when skipped;
    empty when not run."""
    entry = results.get(INFER_FRAME_OPENVINO)
    if not entry:
        return {}
    if 'skipped' in entry:
        return {'skipped': entry['skipped']}
    seconds = dict(entry['beside_seconds_by_label'], **{'ours mixed': entry['seconds']})
    ratio = lambda a, b: seconds[a] / seconds[b]
    return {
        'seconds': seconds,
        'openvino': entry.get('openvino'),
        'setup_seconds': entry.get('openvino_setup_seconds'),
        'frame': entry.get('frame'),
        'ratios': {
            'ours mixed / openvino bf16': ratio('ours mixed', 'openvino bf16'),
            'ours fp32 / openvino f32': ratio('ours fp32', 'openvino f32'),
            'ours mixed / ours fp32': ratio('ours mixed', 'ours fp32'),
            'openvino bf16 / openvino f32': ratio('openvino bf16', 'openvino f32'),
        },
    }


def format_openvino_table(summary):
    """Text lines of ``openvino_summary``."""
    if 'skipped' in summary:
        return [f'OpenVINO peer: not measured ({summary["skipped"]})']
    frame = 'x'.join(str(d) for d in summary.get('frame') or ())
    lines = [
        f'OpenVINO {summary["openvino"]} (BasicSR EDVR, same weights) beside our frame '
        f'{frame}, rounds side by side (minimum, this run)',
        f'{"frame":<16}{"seconds":>9}',
    ]
    for label in ('ours fp32', 'ours mixed', 'openvino f32', 'openvino bf16'):
        lines.append(f'{label:<16}{summary["seconds"][label]:9.3f}')
    for label, value in summary['ratios'].items():
        lines.append(f'{label:<30}{value:6.2f}x')
    return lines


def model_summary(results):
    """Ratios from ``{name: {'seconds': minimum, 'flops' | 'samples': ...}}``.

    Returns a dict with whichever of 'conv_rate' (FLOP/s), 'train_step', 'infer_frame',
    'infer_frame_cached' (each: seconds, flops (by op type, 'forward', 'backward', 'total'),
    conv_rate (the one used), floor_seconds, floor_ratio), 'feature_cache' (time_ratio,
    flops_ratio, time_ratio_at_equal_conv_rate: cached / uncached frame) and 'input_pipeline' (samples_per_second,
    consumed_per_second, headroom) the results allow; empty without model results.
    """
    summary = {}
    rate = None
    if CONV_RATE in results:
        conv = results[CONV_RATE]
        rate = summary['conv_rate'] = conv['flops'] / conv['seconds']
        summary['conv_rate_shape'] = conv.get('shape')
    for name, key, _ in MODEL_ITEMS:
        if name not in results:
            continue
        entry = results[name]
        item = {
            'seconds': entry['seconds'],
            'flops': entry['flops'],
            'samples': entry.get('samples'),
        }
        item_rate = entry.get('conv_rate') or rate
        if item_rate:
            item['conv_rate'] = item_rate
            item['floor_seconds'] = entry['flops']['total'] / item_rate
            item['floor_ratio'] = entry['seconds'] / item['floor_seconds']
        summary[key] = item
    if 'infer_frame' in summary and 'infer_frame_cached' in summary:
        plain, cached = summary['infer_frame'], summary['infer_frame_cached']
        summary['feature_cache'] = {
            'time_ratio': cached['seconds'] / plain['seconds'],
            'flops_ratio': cached['flops']['total'] / plain['flops']['total'],
        }
        if cached.get('conv_rate') and plain.get('conv_rate'):
            summary['feature_cache']['time_ratio_at_equal_conv_rate'] = (
                cached['seconds'] * cached['conv_rate'] / (plain['seconds'] * plain['conv_rate'])
            )
    if INPUT_PIPELINE in results:
        entry = results[INPUT_PIPELINE]
        item = {
            'seconds': entry['seconds'],
            'samples': entry['samples'],
            'samples_per_second': entry['samples'] / entry['seconds'],
        }
        if 'train_step' in summary:
            step = summary['train_step']
            item['consumed_per_second'] = step['samples'] / step['seconds']
            item['headroom'] = item['samples_per_second'] / item['consumed_per_second']
        summary['input_pipeline'] = item
    return summary


def format_model_table(summary):
    """Text lines of ``model_summary``."""
    lines = ['EDVR model times against their FLOP floor (minimum of rounds, this run)']
    if 'conv_rate' in summary:
        lines.append(
            f'tf.nn.conv2d {summary.get("conv_rate_shape")} 3x3: '
            f'{summary["conv_rate"] / 1e9:.1f} GFLOP/s'
        )
    lines.append(
        f'{"work":<14}{"seconds":>9}{"conv GFLOP":>12}{"GFLOP/s":>9}{"floor s":>9}'
        f'{"time/floor":>12}'
    )
    for _, key, label in MODEL_ITEMS:
        if key in summary:
            item = summary[key]
            floor = item.get('floor_seconds')
            lines.append(
                f'{label:<14}{item["seconds"]:9.3f}{item["flops"]["total"] / 1e9:12.1f}'
                + (
                    f'{item["conv_rate"] / 1e9:9.1f}{floor:9.3f}{item["floor_ratio"]:11.2f}x'
                    if floor
                    else ''
                )
            )
    lines.append('(GFLOP/s: the conv2d rate timed in batches between the rounds of that work)')
    if 'feature_cache' in summary:
        item = summary['feature_cache']
        lines.append(
            f'feature cache: a streamed frame takes {item["time_ratio"]:.2f}x the time '
            f'and {item["flops_ratio"]:.2f}x the conv FLOPs of the whole model per window'
        )
        if 'time_ratio_at_equal_conv_rate' in item:
            lines.append(
                f'  time ratio at equal conv2d rate (load between the two cancelled): '
                f'{item["time_ratio_at_equal_conv_rate"]:.2f}x'
            )
    if 'input_pipeline' in summary:
        item = summary['input_pipeline']
        line = f'input pipeline: {item["samples_per_second"]:.1f} samples/s'
        if 'headroom' in item:
            line += (
                f', training consumes {item["consumed_per_second"]:.2f} samples/s: '
                f'headroom {item["headroom"]:.1f}x'
            )
        lines.append(line)
    return lines
