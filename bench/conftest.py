"""Collects the benchmark minima of one run and prints their ratios at the end:
each op against tf.nn.conv2d of the same shape, native against reference, and the EDVR
model's step and frame times against their FLOP floor (bench.floor).

``pytest bench/ --bench-quick`` runs the smallest op shape and the tiny model only (seconds;
what ``python -m bench.report --quick`` and the tests use).
"""

import collections

import pytest

from bench import floor

RESULTS = collections.defaultdict(dict)  # shape name -> {variant: seconds}
MODEL_RESULTS = {}  # model benchmark name -> {'seconds': minimum, **what it measured}


def pytest_addoption(parser):
    parser.addoption(
        '--bench-quick',
        action='store_true',
        help='tiny shapes only: the smallest op shape and the tiny EDVR model',
    )


@pytest.fixture(scope='session', autouse=True)
def thread_pools():
    """Every benchmark runs on the thread pools of edvr.session's default config (TF keeps
    the first session's pools for the whole process; see edvr.session)."""
    from edvr.session import start_thread_pools

    start_thread_pools()


def pytest_collection_modifyitems(config, items):
    """With --bench-quick, keeps only the op benchmarks of the module's smallest shape."""
    if not config.getoption('--bench-quick'):
        return
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, 'callspec', None), 'params', {})
        shapes = getattr(item.module, 'SHAPES', None)
        if 'shape_name' in params and shapes:
            smallest = min(shapes, key=lambda name: _size(shapes[name]))
            (kept if params['shape_name'] == smallest else dropped).append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _size(shape):
    size = 1
    for d in shape:
        size *= d
    return size


def record(benchmark, shape_name, variant):
    """Stores the minimum time of a finished benchmark under (shape, variant)."""
    RESULTS[shape_name][variant] = benchmark.stats.stats.min


def record_beside(shape_name, variant, conv2d_seconds):
    """Stores the minimum time of the tf.nn.conv2d rounds run alternately with `variant`."""
    RESULTS[shape_name][f"conv2d beside {variant}"] = conv2d_seconds


def record_model(benchmark, name, **measured):
    """Stores a model benchmark's minimum time with what it measured (FLOPs, samples), also
    into pytest-benchmark's JSON (``extra_info``)."""
    benchmark.extra_info.update(measured)
    MODEL_RESULTS[name] = dict(measured, seconds=benchmark.stats.stats.min)


def record_skip(name, reason):
    """Records that the model benchmark ``name`` was skipped, and why (the report says so)."""
    MODEL_RESULTS[name] = {'skipped': reason}


def ratios(results=None):
    """(shape, pass, native/conv2d, reference/conv2d, reference/native) as floats (None when
    a variant was not measured), for every shape measured. Each op is divided by the conv2d
    rounds run alternately with it when there are any, else by the conv2d benchmark, and
    reference/native is the quotient of those two ratios, so that load which slowed one
    benchmark (and its conv2d rounds) more than the other cancels out."""
    rows = []
    for shape_name, times in (RESULTS if results is None else results).items():
        for phase in ("fwd", "fwd+bwd"):
            native = times.get(f"native {phase}")
            reference = times.get(f"reference {phase}")
            conv = lambda variant: times.get(
                f"conv2d beside {variant} {phase}", times.get(f"conv2d {phase}")
            )
            ratio = lambda a, b: a / b if a and b else None
            native_ratio = ratio(native, conv("native"))
            reference_ratio = ratio(reference, conv("reference"))
            rows.append(
                (
                    shape_name,
                    phase,
                    native_ratio,
                    reference_ratio,
                    ratio(reference_ratio, native_ratio),
                )
            )
    return rows


def bfloat16_ratios(results=None):
    """(shape, pass, native bf16 / bf16 conv2d beside it, native bf16 / native float32) for
    every shape whose bfloat16 op was measured."""
    rows = []
    for shape_name, times in (RESULTS if results is None else results).items():
        for phase in ("fwd", "fwd+bwd"):
            native = times.get(f"native bf16 {phase}")
            conv = times.get(f"conv2d beside native bf16 {phase}")
            if native and conv:
                fp32 = times.get(f"native {phase}")
                rows.append((shape_name, phase, native / conv, native / fp32 if fp32 else None))
    return rows


def format_bfloat16_table(rows):
    fmt = lambda r: f"{r:6.2f}x" if r else "     -"
    lines = [
        "deform_conv2d in bfloat16 (minimum of rounds, measured in this run)",
        f"{'shape':<28}{'pass':<9}{'native/conv2d bf16':>20}{'bf16/fp32 native':>18}",
    ]
    for shape, phase, to_conv, to_fp32 in rows:
        lines.append(f"{shape:<28}{phase:<9}{fmt(to_conv):>20}{fmt(to_fp32):>18}")
    return lines


def ratio_rows(results=None):
    """``ratios`` formatted: (shape, pass, '  2.69x', ...), '     -' where not measured."""
    fmt = lambda r: f"{r:6.2f}x" if r else "     -"
    return [
        (shape, phase) + tuple(fmt(r) for r in values) for shape, phase, *values in ratios(results)
    ]


def format_op_table(rows):
    lines = [
        "deform_conv2d time ratios (minimum of rounds, measured in this run)",
        f"{'shape':<28}{'pass':<9}{'native/conv2d':>15}{'reference/conv2d':>18}"
        f"{'reference/native':>18}",
    ]
    for shape, phase, native, reference, speedup in rows:
        lines.append(f"{shape:<28}{phase:<9}{native:>15}{reference:>18}{speedup:>18}")
    return lines


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    rows = ratio_rows()
    if rows:
        write("")
        for line in format_op_table(rows):
            write(line)
    bf16_rows = bfloat16_ratios()
    if bf16_rows:
        write("")
        for line in format_bfloat16_table(bf16_rows):
            write(line)
    summary = floor.model_summary(MODEL_RESULTS)
    if summary:
        write("")
        for line in floor.format_model_table(summary):
            write(line)
    mixed = floor.mixed_summary(MODEL_RESULTS)
    if mixed:
        write("")
        for line in floor.format_mixed_table(mixed):
            write(line)
    peer = floor.openvino_summary(MODEL_RESULTS)
    if peer:
        write("")
        for line in floor.format_openvino_table(peer):
            write(line)
