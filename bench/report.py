"""Performance report: runs the benchmark suites of bench/ once and prints the ratios
measured in that run.

    python -m bench.report [--quick] [--json FILE] [--plot FILE.png] [--multiworker]
        [--only PYTEST_K_EXPRESSION]

- each deformable op (deform_conv2d forward and forward+backward, native and reference)
  against tf.nn.conv2d of the same shape, and native against reference
  (bench/test_deform_conv2d_bench.py);
- the EDVR-M training step and one inferred frame against their FLOP floor, and the input
  pipeline's headroom over training (bench/test_edvr_bench.py, bench.floor);
- a frame of a streamed clip with the feature cache against one without it (time and conv
  FLOPs, same run); peak memory of 30 and 300 streamed frames is bench.video_memory.
- mixed precision: deform_conv2d in bfloat16 against bfloat16 tf.nn.conv2d, and the training
  step and the frame in mixed precision against float32, rounds side by side.
- the OpenVINO peer (optional, with the torch extra): BasicSR's EDVR-M on the same weights in
  OpenVINO f32 and bf16 beside our frame in float32 and mixed precision (bench.openvino_peer).
- with ``--multiworker``, the all-reduce's share of a training step of 2 local workers
  (bench/multiworker.py): gradient bytes all-reduced per step, time in collective ops.

``--only`` runs the benchmarks that a pytest ``-k`` expression selects, e.g. ``--only
'infer_frame_mixed or openvino'`` (the report then has those sections only).
``--quick`` runs the smallest op shape and the tiny model at tiny sizes (seconds; for tests).
The measurements are those of the pytest-benchmark suites (pytest runs in this process);
nothing is timed here.
"""

import argparse
import datetime
import json
import os
import platform
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TARGETS = {'train_step': 1.5, 'infer_frame': 1.3}  # time / FLOP floor the project aims for
OP_TARGETS = {'fwd': 2.0, 'fwd+bwd': 3.0}  # native deform_conv2d / conv2d the project aims for
REPORT_ITEMS = (
    'train_step',
    'infer_frame',
    'infer_frame_cached',
    'feature_cache',
    'input_pipeline',
)
# Mixed precision (issue 14): mixed / float32 time, and bfloat16 deform_conv2d / bfloat16 conv2d.
MIXED_TARGETS = {'train_step': 0.7, 'infer_frame': 0.7}
BF16_OP_TARGETS = {'fwd': 2.5, 'fwd+bwd': 2.5}


def run_suites(quick, pytest_args=()):
    """Runs ``pytest bench/`` in this process; returns (op times, model results) as the
    suites recorded them in ``bench.conftest``."""
    import pytest

    from bench import conftest

    conftest.RESULTS.clear()
    conftest.MODEL_RESULTS.clear()
    args = [BENCH_DIR, '-q', '-p', 'no:cacheprovider', *pytest_args]
    if quick:
        args.append('--bench-quick')
    code = pytest.main(args)
    if code != 0:
        raise RuntimeError(f'pytest {" ".join(args)} failed (exit code {int(code)})')
    if not conftest.MODEL_RESULTS:
        raise RuntimeError(
            'the benchmark run recorded no model results (was the native op '
            'library built? `python setup.py build_ext --inplace`)'
        )
    return (
        {shape: dict(times) for shape, times in conftest.RESULTS.items()},
        dict(conftest.MODEL_RESULTS),
    )


def build_report(op_times, model_results, quick):
    """The report as a JSON-able dict (see docs/performance.md)."""
    import tensorflow as tf

    import ops
    from bench import conftest, floor
    from edvr import precision
    from edvr.session import thread_counts

    summary = floor.model_summary(model_results)
    intra, inter = thread_counts()
    report = {
        'quick': quick,
        'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'machine': {
            'cpus': os.cpu_count(),
            'processor': platform.processor() or platform.machine(),
            'tensorflow': tf.version.VERSION,
            'ops_backend': ops.backend(),
            'intra_op_threads': intra,
            'inter_op_threads': inter,
        },
        'ops': [
            {
                'shape': shape,
                'pass': phase,
                'native_vs_conv2d': native,
                'reference_vs_conv2d': reference,
                'reference_vs_native': speedup,
            }
            for shape, phase, native, reference, speedup in conftest.ratios(op_times)
        ],
        'op_times': op_times,
        'conv_rate_gflops': summary['conv_rate'] / 1e9 if 'conv_rate' in summary else None,
        'conv_rate_shape': summary.get('conv_rate_shape'),
        'targets': TARGETS,
        'op_targets': OP_TARGETS,
        'bf16_ops': [
            {
                'shape': shape,
                'pass': phase,
                'native_vs_conv2d_bf16': to_conv,
                'bf16_vs_fp32_native': to_fp32,
            }
            for shape, phase, to_conv, to_fp32 in conftest.bfloat16_ratios(op_times)
        ],
        'mixed_precision': floor.mixed_summary(model_results),
        'openvino': floor.openvino_summary(model_results),
        'mixed_targets': MIXED_TARGETS,
        'bf16_op_targets': BF16_OP_TARGETS,
        'cpu_flags_bf16': sorted(precision.cpu_flags() & set(precision.NATIVE_BFLOAT16_FLAGS)),
    }
    for key in REPORT_ITEMS:
        report[key] = summary.get(key)
    return report


def format_report(report):
    """Text lines: the op ratio table, the model table, and the targets."""
    from bench import conftest, floor

    op_rows = conftest.ratio_rows(report['op_times'])
    lines = conftest.format_op_table(op_rows) if op_rows else []
    summary = {k: report[k] for k in REPORT_ITEMS if report.get(k)}
    if report['conv_rate_gflops']:
        summary.update(
            conv_rate=report['conv_rate_gflops'] * 1e9, conv_rate_shape=report['conv_rate_shape']
        )
    lines += [''] + floor.format_model_table(summary)
    bf16_rows = [
        (r['shape'], r['pass'], r['native_vs_conv2d_bf16'], r['bf16_vs_fp32_native'])
        for r in report.get('bf16_ops', [])
    ]
    if bf16_rows:
        lines += [''] + conftest.format_bfloat16_table(bf16_rows)
    if report.get('mixed_precision'):
        lines += [''] + floor.format_mixed_table(report['mixed_precision'])
    if report.get('openvino'):
        lines += [''] + floor.format_openvino_table(report['openvino'])
    for key, target in TARGETS.items():
        item = report[key]
        if item and 'floor_ratio' in item:
            verdict = 'met' if item['floor_ratio'] <= target else 'not met'
            if report['quick']:
                verdict = 'quick sizes: not comparable'
            lines.append(
                f'target {key}: <= {target}x floor, measured {item["floor_ratio"]:.2f}x ({verdict})'
            )
    if report.get('multiworker'):
        from bench import multiworker

        lines.append(multiworker.format_measure(report['multiworker']))
    for key, target in MIXED_TARGETS.items():
        item = report.get('mixed_precision', {}).get(key)
        if item:
            verdict = 'met' if item['ratio'] <= target else 'not met'
            if report['quick']:
                verdict = 'quick sizes: not comparable'
            lines.append(
                f'target {key} mixed: <= {target}x float32, measured '
                f'{item["ratio"]:.2f}x ({verdict})'
            )
    peer_ratio = report.get('openvino', {}).get('ratios', {}).get('ours mixed / openvino bf16')
    if peer_ratio:
        verdict = 'met' if peer_ratio < 1 else 'not met'
        lines.append(
            f'target frame mixed: faster than OpenVINO bf16, measured {peer_ratio:.2f}x '
            f'its time ({verdict})'
        )
    for row in report.get('bf16_ops', []):
        target = BF16_OP_TARGETS[row['pass']]
        verdict = 'met' if row['native_vs_conv2d_bf16'] <= target else 'not met'
        if not report['quick']:
            lines.append(
                f'target bf16 deform_conv2d {row["shape"]} {row["pass"]}: <= {target}x '
                f'bf16 conv2d, measured {row["native_vs_conv2d_bf16"]:.2f}x ({verdict})'
            )
    lines.append(
        'CPU bfloat16 flags: '
        + (', '.join(report.get('cpu_flags_bf16') or []) or 'none (bfloat16 is emulated)')
    )
    machine = report['machine']
    lines.append(
        f'{"quick sizes" if report["quick"] else "full sizes"}, {report["date"]}, '
        f'{machine["cpus"]} CPUs, TF {machine["tensorflow"]}, ops backend '
        f'{machine["ops_backend"]}, threads intra {machine["intra_op_threads"]} / '
        f'inter {machine["inter_op_threads"]}'
    )
    return lines


def plot_op_ratios(report, path):
    """Bar chart of op time / conv2d time per shape (log scale), native and reference."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = report['ops']
    shapes = list(dict.fromkeys(r['shape'] for r in rows))
    series = [
        (f'{variant} {phase}', phase, key)
        for variant, key in (('native', 'native_vs_conv2d'), ('reference', 'reference_vs_conv2d'))
        for phase in ('fwd', 'fwd+bwd')
    ]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(7.5, 2.2 * len(shapes) + 3.5), 4.5))
    for i, (label, phase, key) in enumerate(series):
        values = [
            next((r[key] for r in rows if r['shape'] == s and r['pass'] == phase), None)
            for s in shapes
        ]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(shapes))]
        ax.bar([x for x, v in zip(xs, values) if v], [v for v in values if v], width, label=label)
    ax.axhline(1.0, color='black', linewidth=0.8)
    for (phase, target), style in zip(OP_TARGETS.items(), (':', '--')):
        ax.axhline(
            target,
            color='gray',
            linestyle=style,
            linewidth=0.8,
            label=f'target native {phase} ({target:g}x)',
        )
    ax.set_yscale('log')
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels(shapes, fontsize=8)
    ax.set_ylabel('time / tf.nn.conv2d of the same shape')
    ax.set_title(
        f'deform_conv2d / tf.nn.conv2d of the same shape\n'
        f'(3x3, 64 channels, 8 deformable groups; {report["date"][:10]})',
        fontsize=10,
    )
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m bench.report', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument(
        '--quick', action='store_true', help='tiny shapes and the tiny model: seconds, for tests'
    )
    parser.add_argument('--json', help='write the report here as JSON')
    parser.add_argument('--plot', help='write the op ratios across shapes here (PNG)')
    parser.add_argument(
        '--multiworker',
        action='store_true',
        help='also measure the all-reduce share of a step of 2 local workers',
    )
    parser.add_argument(
        '--only',
        metavar='EXPRESSION',
        help="run only the benchmarks this pytest -k expression selects, e.g. "
        "'infer_frame_mixed or openvino'",
    )
    args = parser.parse_args(argv)
    op_times, model_results = run_suites(args.quick, ['-k', args.only] if args.only else ())
    report = build_report(op_times, model_results, args.quick)
    if args.multiworker:
        from bench import multiworker

        report['multiworker'] = multiworker.measure_size('quick' if args.quick else 'full')
    print()
    print('\n'.join(format_report(report)))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
        print(f'wrote {args.json}')
    if args.plot:
        plot_op_ratios(report, args.plot)
        print(f'wrote {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
