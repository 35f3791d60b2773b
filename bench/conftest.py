"""Collects the benchmark minima of one run and prints their ratios at the end:
each op against tf.nn.conv2d of the same shape, and native against reference."""
import collections

RESULTS = collections.defaultdict(dict)  # shape name -> {variant: seconds}


def record(benchmark, shape_name, variant):
    """Stores the minimum time of a finished benchmark under (shape, variant)."""
    RESULTS[shape_name][variant] = benchmark.stats.stats.min


def ratio_rows():
    """(shape, pass, native/conv2d, reference/conv2d, reference/native) for every shape measured."""
    rows = []
    for shape_name, times in RESULTS.items():
        for phase in ("fwd", "fwd+bwd"):
            conv = times.get(f"conv2d {phase}")
            native = times.get(f"native {phase}")
            reference = times.get(f"reference {phase}")
            fmt = lambda a, b: f"{a / b:6.2f}x" if a and b else "     -"
            rows.append((shape_name, phase, fmt(native, conv), fmt(reference, conv), fmt(reference, native)))
    return rows


def pytest_terminal_summary(terminalreporter):
    rows = ratio_rows()
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("deform_conv2d time ratios (minimum of rounds, measured in this run)")
    write(f"{'shape':<28}{'pass':<9}{'native/conv2d':>15}{'reference/conv2d':>18}{'reference/native':>18}")
    for shape, phase, native, reference, speedup in rows:
        write(f"{shape:<28}{phase:<9}{native:>15}{reference:>18}{speedup:>18}")
