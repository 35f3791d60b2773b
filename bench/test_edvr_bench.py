"""EDVR-M model benchmarks: a training step (batch 4 of 5 frames of 64x64, Adam,
Charbonnier), one 180x320 frame of inference (to 720x1280) without and with the feature
cache of a streamed clip, the input pipeline, and the
tf.nn.conv2d rate that sets their FLOP floor. The times against the floor are printed at
the end (bench.floor); ``--bench-quick`` runs the tiny model at tiny sizes instead.

The workloads are bench.workloads (edvr.training.graph's TrainingGraph, edvr.inference's Restorer,
edvr.data.pipeline on a synthetic dataset), run in graph mode with edvr.session's config.
"""

import os
import time

import pytest
import tensorflow as tf

from bench import floor, workloads
from bench.conftest import record_model, record_skip
from ops import _native

# Full-size rounds are few: an EDVR-M training step takes seconds on 2 cores.
ROUNDS = {
    'full': {
        floor.CONV_RATE: 10,
        floor.TRAIN_STEP: 3,
        floor.INFER_FRAME: 3,
        floor.INFER_FRAME_CACHED: 3,
        floor.INPUT_PIPELINE: 3,
        floor.TRAIN_STEP_MIXED: 3,
        floor.INFER_FRAME_MIXED: 3,
        floor.INFER_FRAME_OPENVINO: 3,
    },
    'quick': {
        floor.CONV_RATE: 5,
        floor.TRAIN_STEP: 3,
        floor.INFER_FRAME: 3,
        floor.INFER_FRAME_CACHED: 3,
        floor.INPUT_PIPELINE: 2,
        floor.TRAIN_STEP_MIXED: 3,
        floor.INFER_FRAME_MIXED: 3,
        floor.INFER_FRAME_OPENVINO: 3,
    },
}


CONV_BATCH_SECONDS = {'full': 0.5, 'quick': 0.05}


@pytest.fixture(scope='module')
def size(request):
    if not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip('native op library not built: run `python setup.py build_ext --inplace`')
    return 'quick' if request.config.getoption('--bench-quick') else 'full'


def measure(benchmark, workload, name, size, interleave_conv=False, beside=None, **measured):
    """Times ``workload.run`` (one warm-up round) and records it under ``name``.

    With ``interleave_conv``, the floor's ``tf.nn.conv2d`` runs for about half a second (at
    full size) before every round (untimed, in pytest-benchmark's setup), and the best of
    those batches is recorded as ``conv_rate``: the floor comes from the same minutes and
    load as the work, and from stretches long enough that a short lull on a shared machine
    cannot flatter it. With ``beside`` (another workload: float32 next to mixed precision),
    that workload runs once before every round instead (timed here, untimed by
    pytest-benchmark), and its best round is recorded as ``beside_seconds``; ``beside`` may
    also be {label: callable}, each called once before every round, in order, and recorded as
    ``beside_seconds_by_label``.
    """
    benchmark.group = 'edvr model'
    conv = workloads.ConvRate(workloads.SIZES[size]['conv_shape']) if interleave_conv else None
    batch_rates = []
    runs_beside = beside if isinstance(beside, dict) else {None: beside.run} if beside else {}
    beside_times = {label: [] for label in runs_beside}

    def time_conv():
        for label, run in runs_beside.items():
            start = time.perf_counter()
            run()
            beside_times[label].append(time.perf_counter() - start)
        if conv is None:
            return
        runs, start = 0, time.perf_counter()
        while runs < 2 or time.perf_counter() - start < CONV_BATCH_SECONDS[size]:
            conv.run()
            runs += 1
        batch_rates.append(runs * conv.flops / (time.perf_counter() - start))

    try:
        benchmark.pedantic(
            workload.run, setup=time_conv, rounds=ROUNDS[size][name], warmup_rounds=1
        )
    finally:
        workload.close()
        for other in (conv, beside):
            if other is not None and not isinstance(other, dict):
                other.close()
    if conv:
        measured['conv_rate'] = max(batch_rates)
    if None in beside_times:
        measured['beside_seconds'] = min(beside_times[None])
    elif beside_times:
        measured['beside_seconds_by_label'] = {k: min(v) for k, v in beside_times.items()}
    record_model(benchmark, name, **measured)


def test_conv2d_rate(benchmark, size):
    shape = workloads.SIZES[size]['conv_shape']
    workload = workloads.ConvRate(shape, workloads.load_sized_config(size)['threads'])
    measure(benchmark, workload, floor.CONV_RATE, size, flops=workload.flops, shape=list(shape))


def test_train_step(benchmark, size):
    workload = workloads.TrainStep(workloads.load_sized_config(size))
    measure(
        benchmark,
        workload,
        floor.TRAIN_STEP,
        size,
        interleave_conv=True,
        flops=dict(workload.flops),
        samples=workload.samples,
    )


def test_infer_frame(benchmark, size, tmp_path):
    height, width = workloads.SIZES[size]['frame']
    workload = workloads.InferFrame(workloads.load_sized_config(size), height, width, str(tmp_path))
    measure(
        benchmark,
        workload,
        floor.INFER_FRAME,
        size,
        interleave_conv=True,
        flops=dict(workload.flops),
        samples=workload.samples,
        frame=[height, width],
    )


def test_infer_frame_cached(benchmark, size, tmp_path):
    """A frame of a streamed clip with the feature cache (each frame's features once), in
    the same run as test_infer_frame: the report gives the ratio of the two."""
    height, width = workloads.SIZES[size]['frame']
    workload = workloads.InferFrame(
        workloads.load_sized_config(size), height, width, str(tmp_path), cached=True
    )
    measure(
        benchmark,
        workload,
        floor.INFER_FRAME_CACHED,
        size,
        interleave_conv=True,
        flops=dict(workload.flops),
        samples=workload.samples,
        frame=[height, width],
    )


def test_input_pipeline(benchmark, size, tmp_path_factory):
    settings = workloads.SIZES[size]
    workload = workloads.InputPipeline(
        workloads.load_sized_config(size),
        str(tmp_path_factory.mktemp('synthetic') / 'data'),
        settings['gt_frame'],
        settings['pipeline_batches'],
    )
    measure(benchmark, workload, floor.INPUT_PIPELINE, size, samples=workload.samples)


# Mixed precision (edvr.precision) against float32: each round of the bfloat16 workload follows
# a round of the float32 one, so that their ratio compares rounds taken side by side.
def test_train_step_mixed(benchmark, size):
    config = workloads.load_sized_config(size)
    fp32 = workloads.TrainStep(config)
    fp32.run()  # warm-up, as pytest-benchmark's for the timed workload
    workload = workloads.TrainStep(config, compute_dtype=tf.bfloat16)
    measure(
        benchmark, workload, floor.TRAIN_STEP_MIXED, size, beside=fp32, samples=workload.samples
    )


def test_infer_frame_mixed(benchmark, size, tmp_path):
    height, width = workloads.SIZES[size]['frame']
    config = workloads.load_sized_config(size)
    fp32 = workloads.InferFrame(config, height, width, str(tmp_path / 'fp32'))
    fp32.run()
    workload = workloads.InferFrame(
        config, height, width, str(tmp_path / 'mixed'), compute_dtype=tf.bfloat16
    )
    measure(
        benchmark,
        workload,
        floor.INFER_FRAME_MIXED,
        size,
        beside=fp32,
        samples=workload.samples,
        frame=[height, width],
    )


def test_infer_frame_openvino(benchmark, size, tmp_path):
    """Our frame beside OpenVINO's, the peer a user would pick for CPU inference: BasicSR's
    EDVR on the same weights and window (bench.openvino_peer), compiled with
    INFERENCE_PRECISION_HINT f32 and bf16. Each timed round of our mixed-precision frame
    follows one of our float32 frame, OpenVINO f32 and OpenVINO bf16."""
    from bench import openvino_peer

    reason = openvino_peer.missing_requirement()
    if size == 'quick':
        reason = (
            'measured at full size only: BasicSR cannot express the tiny config, and the '
            "peer's set-up takes a minute"
        )
    if reason:
        record_skip(floor.INFER_FRAME_OPENVINO, reason)
        pytest.skip(reason)
    height, width = workloads.SIZES[size]['frame']
    config = workloads.load_sized_config(size)
    fp32 = workloads.InferFrame(config, height, width, str(tmp_path / 'fp32'))
    try:
        peer = workloads.OpenVinoFrame(fp32, config['threads'])
    except openvino_peer.PeerError as error:
        fp32.close()
        if 'cannot download basicsr' not in str(error):
            raise
        record_skip(floor.INFER_FRAME_OPENVINO, str(error).splitlines()[-1])
        pytest.skip(str(error).splitlines()[-1])
    try:
        workload = workloads.InferFrame(
            config, height, width, str(tmp_path / 'mixed'), compute_dtype=tf.bfloat16
        )
        beside = {
            'ours fp32': fp32.run,
            'openvino f32': peer.runner('f32'),
            'openvino bf16': peer.runner('bf16'),
        }
        for run in beside.values():
            run()  # warm-up, as pytest-benchmark's for the timed workload
        measure(
            benchmark,
            workload,
            floor.INFER_FRAME_OPENVINO,
            size,
            beside=beside,
            samples=workload.samples,
            frame=[height, width],
            openvino=peer.version,
            openvino_setup_seconds=peer.setup_seconds,
        )
    finally:
        fp32.close()
        peer.close()
