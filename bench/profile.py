"""Where EDVR's time goes: one traced run (RunOptions FULL_TRACE) aggregated by op type.

    python -m bench.profile --what train|infer [--size full|quick] [--top 25] [--depth 2]
        [--trace FILE.json] [--intra_op_threads N] [--inter_op_threads N] [--precision mixed|fp32]

Prints, per runtime op type (after grappler and oneDNN rewrites, e.g. ``_MklConv2D``), the
summed op time, its share and its count, grouped into the fused deformable convolution
(sampling and its matrix products), convolution, deformable sampling (the other ``ops``
kernels) and everything else; then, per model component (name scope at ``--depth``,
e.g. ``pcd_alignment/l1``, forward and backward together), the time of all its ops and the rate
its convolutions reach. ``--trace`` writes the run as a Chrome trace (chrome://tracing,
Perfetto).
"""

import argparse
import collections
import json
import sys
import tempfile

import tensorflow as tf

from bench import flops

GROUPS = (
    ('fused deformable conv', ('EdvrDeformConv2D',)),  # before 'Conv2D' matches it
    ('convolution', ('Conv2D', 'Conv2DBackprop', 'DepthwiseConv')),
    ('deformable sampling', ('EdvrDeformableOffsets', 'EdvrBilinearSample')),
)


def op_group(op_type):
    """'fused deformable conv', 'convolution', 'deformable sampling' or 'other' for a runtime
    op type."""
    for group, markers in GROUPS:
        if any(marker in op_type for marker in markers):
            return group
    return 'other'


def traced_run(run):
    """Calls ``run(options=..., run_metadata=...)`` once with a full trace; returns the
    RunMetadata. Run the workload once untraced before, so one-time set-up is not counted."""
    options = tf.compat.v1.RunOptions()
    options.trace_level = options.FULL_TRACE
    metadata = tf.compat.v1.RunMetadata()
    run(options=options, run_metadata=metadata)
    return metadata


def _node_events(metadata):
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            label = node.timeline_label or f'{node.node_name} = {node.node_name}()'
            op_type = label.split(' = ', 1)[-1].split('(', 1)[0]
            if op_type in ('NoOp', '_SOURCE'):
                continue
            yield device.device, node, op_type


def time_by_op_type(metadata):
    """Aggregates a traced run. Returns dict with 'rows' (list of dicts op_type, group,
    seconds, count, share; slowest first), 'groups' (group -> seconds), 'busy' (summed op
    seconds) and 'wall' (first op start to last op end, seconds)."""
    seconds, counts = collections.Counter(), collections.Counter()
    start, end = None, None
    for _device, node, op_type in _node_events(metadata):
        seconds[op_type] += node.all_end_rel_nanos * 1e-9
        counts[op_type] += 1
        first = node.all_start_nanos
        last = node.all_start_nanos + node.all_end_rel_nanos
        start = first if start is None else min(start, first)
        end = last if end is None else max(end, last)
    busy = sum(seconds.values())
    rows = [
        dict(
            op_type=t,
            group=op_group(t),
            seconds=s,
            count=counts[t],
            share=s / busy if busy else 0.0,
        )
        for t, s in seconds.most_common()
    ]
    groups = collections.Counter()
    for row in rows:
        groups[row['group']] += row['seconds']
    return {
        'rows': rows,
        'groups': dict(groups),
        'busy': busy,
        'wall': (end - start) * 1e-9 if start is not None else 0.0,
    }


FUSABLE = ('BiasAdd', 'LeakyRelu', 'Relu', 'AddV2', 'Add')  # what grappler fuses into a conv


def scope_key(name, depth):
    """The model component of an op or traced node name: ``gradients/edvr_1/pcd_alignment/l1/
    dcn/Conv2D`` -> ``pcd_alignment/l1`` at depth 2 (gradient and tower prefixes and the op's
    own name dropped)."""
    parts = name.split('/')[:-1]
    while parts and parts[0].startswith('gradients'):
        parts = parts[1:]
    return '/'.join(parts[1 : 1 + depth]) or name


def _conv_components(fetches, depth):
    """(FLOPs per component, component of every op name a fused convolution may carry)."""
    conv_flops, component = collections.Counter(), {}
    for op in flops.ancestors(fetches):
        if op.type not in flops.CONV_TYPES:
            continue
        key = component[op.name] = scope_key(op.name, depth)
        conv_flops[key] += flops.conv_flops(op)
        # A fused op is named after the last op it absorbed (bias, activation, residual add).
        # (IdentityN: tf.custom_gradient's bookkeeping, pruned before the run.)
        for _ in range(3):
            consumers = [c for c in op.outputs[0].consumers() if c.type != 'IdentityN']
            if len(consumers) != 1 or consumers[0].type not in FUSABLE:
                break
            op = consumers[0]
            component.setdefault(op.name, key)
    return conv_flops, component


def time_by_scope(metadata, fetches, depth=2):
    """Per component (``scope_key``): seconds of all its ops, seconds of its convolutions, the
    convolution FLOPs ``fetches`` need there, and their rate.
    Returns rows (dicts scope, seconds, conv_seconds, conv_flops, conv_rate), slowest first."""
    conv_flops, component = _conv_components(fetches, depth)
    seconds, conv_seconds = collections.Counter(), collections.Counter()
    for _device, node, op_type in _node_events(metadata):
        key = component.get(node.node_name) or scope_key(node.node_name, depth)
        seconds[key] += node.all_end_rel_nanos * 1e-9
        if op_group(op_type) in ('convolution', 'fused deformable conv'):
            conv_seconds[key] += node.all_end_rel_nanos * 1e-9
    return [
        dict(
            scope=k,
            seconds=t,
            conv_seconds=conv_seconds[k],
            conv_flops=conv_flops[k],
            conv_rate=conv_flops[k] / conv_seconds[k] if conv_seconds[k] else None,
        )
        for k, t in seconds.most_common()
    ]


def format_scopes(rows, top=25):
    lines = [f'{"component":<44}{"seconds":>9}{"conv s":>9}{"conv GFLOP":>12}{"GFLOP/s":>9}']
    for row in rows[:top]:
        rate = f'{row["conv_rate"] / 1e9:9.1f}' if row['conv_rate'] else f'{"-":>9}'
        lines.append(
            f'{row["scope"]:<44}{row["seconds"]:9.3f}{row["conv_seconds"]:9.3f}'
            f'{row["conv_flops"] / 1e9:12.2f}{rate}'
        )
    return '\n'.join(lines)


def chrome_trace(metadata):
    """The traced run as Chrome trace events (one row per device and thread)."""
    events = []
    for device, node, op_type in _node_events(metadata):
        events.append(
            {
                'name': op_type,
                'ph': 'X',
                'pid': device,
                'tid': node.thread_id,
                'ts': node.all_start_nanos / 1e3,
                'dur': node.all_end_rel_nanos / 1e3,
                'args': {'name': node.node_name},
            }
        )
    return {'traceEvents': events}


def format_profile(profile, top=25):
    """The aggregate as a text table: the ``top`` op types, then the groups."""
    lines = [f'{"op type":<44}{"group":<23}{"seconds":>9}{"share":>8}{"count":>7}']
    for row in profile['rows'][:top]:
        lines.append(
            f'{row["op_type"]:<44}{row["group"]:<23}{row["seconds"]:9.3f}'
            f'{100 * row["share"]:7.1f}%{row["count"]:7d}'
        )
    rest = profile['rows'][top:]
    if rest:
        lines.append(
            f'{f"({len(rest)} more op types)":<65}'
            f'{sum(r["seconds"] for r in rest):9.3f}'
            f'{100 * sum(r["share"] for r in rest):7.1f}%'
        )
    lines.append('')
    busy = profile['busy']
    for group, seconds in sorted(profile['groups'].items(), key=lambda kv: -kv[1]):
        lines.append(f'{group:<67}{seconds:9.3f}{100 * seconds / busy:7.1f}%')
    lines.append(f'{"summed op time":<65}{busy:9.3f}')
    lines.append(f'{"wall time of the traced run":<65}{profile["wall"]:9.3f}')
    if busy > 1.05 * profile['wall']:
        lines.append(
            '(ops overlapped: with inter-op parallelism an op\'s time includes sharing '
            'the cores; --inter_op_threads 1 attributes time serially)'
        )
    return '\n'.join(lines)


def build_workload(what, size, threads, tmp_dir, mixed_precision=False):
    """The ``bench.workloads`` object for ``what`` ('train' or 'infer') at ``size``, in mixed
    precision (edvr.precision) or float32."""
    from bench import workloads
    from edvr.precision import compute_dtype

    config = workloads.load_sized_config(size, threads)
    dtype = compute_dtype(mixed_precision)
    if what == 'train':
        return workloads.TrainStep(config, compute_dtype=dtype)
    height, width = workloads.SIZES[size]['frame']
    return workloads.InferFrame(config, height, width, tmp_dir, compute_dtype=dtype)


def main(argv=None):
    from edvr import precision
    from edvr.session import add_thread_flags, threads_from_flags

    parser = argparse.ArgumentParser(
        prog='python -m bench.profile', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--what', choices=('train', 'infer'), default='train')
    parser.add_argument(
        '--size',
        choices=('full', 'quick'),
        default='full',
        help='full: EDVR-M at the issue sizes; quick: the tiny model',
    )
    parser.add_argument('--top', type=int, default=25, help='op types to list')
    parser.add_argument(
        '--depth', type=int, default=2, help='name-scope depth of the per-component table'
    )
    parser.add_argument('--trace', help='write a Chrome trace of the run here')
    add_thread_flags(parser)
    precision.add_precision_flag(parser)
    args = parser.parse_args(argv)
    from bench import workloads

    mixed = precision.mixed_from_flags(args, workloads.load_sized_config(args.size)['train'])
    with tempfile.TemporaryDirectory() as tmp_dir:
        workload = build_workload(args.what, args.size, threads_from_flags(args), tmp_dir, mixed)
        try:
            workload.run()  # warm-up: graph optimisation, allocations, oneDNN primitives
            metadata = traced_run(workload.run)
        finally:
            workload.close()
    profile = time_by_op_type(metadata)
    print(
        f'{args.what} ({args.size}, {"mixed precision" if mixed else "float32"}): time by op '
        f'type of one traced run'
    )
    print(format_profile(profile, args.top))
    print()
    print(f'{args.what} ({args.size}): time by model component')
    print(format_scopes(time_by_scope(metadata, workload.traced_fetches, args.depth), args.top))
    if args.trace:
        with open(args.trace, 'w') as f:
            json.dump(chrome_trace(metadata), f)
        print(f'wrote {args.trace}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
