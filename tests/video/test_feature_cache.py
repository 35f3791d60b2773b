"""Each frame's features once: the cached, streamed path of edvr.infer equals window-by-window
inference (the whole model on each window) to float rounding, for every temporal padding at
the clip ends, every model variant (pre-deblur, hr_in, plain fusion, off-centre reference)
and with tiling; and it holds a bounded number of frames."""

import numpy as np
import pytest

from edvr import inference, video
from edvr.config import parse_config
from edvr.model.feature_cache import FeatureCache
from tests.model.model_testing import random_checkpoint

BASE = dict(
    num_feat=8,
    num_frame=5,
    deformable_groups=1,
    num_extract_block=1,
    num_reconstruct_block=1,
    num_upsample_feat=8,
)
VARIANTS = {
    'tsa': {},
    'predeblur': dict(with_predeblur=True),
    'hr_in': dict(with_predeblur=True, hr_in=True),
    'plain_fusion_off_centre': dict(with_tsa=False, center_frame_idx=1),
}
FRAMES = 7


class ListSource:
    """A clip in memory, of unknown length (as a container that declares no frame count)."""

    rate = time_base = count = None
    audio = ()

    def __init__(self, clip):
        self.clip, self.size = clip, clip.shape[1:3]

    def __iter__(self):
        for index, pixels in enumerate(self.clip):
            yield video.Frame(index, f'{index:08d}.png', pixels, None)


class ListSink:
    def __init__(self):
        self.frames = []

    def write(self, frame, restored):
        self.frames.append((frame.index, restored))


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def restorer(request, tmp_path_factory):
    cfg = parse_config({'model': dict(BASE, **VARIANTS[request.param])})['model']
    folder = tmp_path_factory.mktemp(request.param)
    random_checkpoint(cfg, folder / 'model', seed=5, offset_scale=2.0)
    restorer = inference.Restorer(cfg, str(folder / 'model'))
    yield restorer
    restorer.close()


@pytest.mark.parametrize('padding', inference.PADDINGS)
def test_cached_stream_equals_window_by_window(restorer, padding):
    size = (32, 48) if restorer.cfg['hr_in'] else (12, 20)  # hr_in: multiples of 16
    clip = np.random.default_rng(1).uniform(0, 1, (FRAMES,) + size + (3,)).astype(np.float32)
    expected = [restorer(clip[window]) for window in inference.clip_windows(FRAMES, 5, padding)]

    sink = ListSink()
    cache = inference.restore_stream(restorer, ListSource(clip), sink, padding, progress=False)
    assert [index for index, _ in sink.frames] == list(range(FRAMES))
    for (index, got), want in zip(sink.frames, expected):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5, (padding, index)
    assert cache.computed == FRAMES  # each frame's features once
    assert cache.reused == FRAMES * (5 - 1)
    assert cache.peak <= 2 * 5 - 1


def test_uncached_stream_equals_cached(restorer):
    clip = np.random.default_rng(2).uniform(0, 1, (6, 32, 48, 3)).astype(np.float32)
    cached, uncached = ListSink(), ListSink()
    inference.restore_stream(restorer, ListSource(clip), cached, progress=False)
    assert (
        inference.restore_stream(
            restorer, ListSource(clip), uncached, feature_cache=False, progress=False
        )
        is None
    )
    for (_, a), (_, b) in zip(cached.frames, uncached.frames):
        assert np.abs(a - b).max() < 1e-5


def test_cached_tiles_equal_uncached_tiles(restorer):
    if restorer.cfg['hr_in']:
        pytest.skip('hr_in tiles are multiples of 16: the 32x48 frame is one tile')
    clip = np.random.default_rng(3).uniform(0, 1, (5, 16, 40, 3)).astype(np.float32)
    tiled = ListSink()
    cache = inference.restore_stream(
        restorer, ListSource(clip), tiled, 'replicate', tile=8, overlap=8, progress=False
    )
    for index, window in enumerate(inference.clip_windows(5, 5, 'replicate')):
        want = restorer(clip[window], tile=8, overlap=8)
        assert np.abs(tiled.frames[index][1] - want).max() < 1e-5
    # Features are kept per frame and tile region: the 2 row tiles share the region (0, 16)
    # (the overlap covers the frame's height), the 5 column tiles have 5 regions.
    regions = {
        (r0, r1, q0, q1)
        for r0, r1, _, _ in inference.tile_spans(16, 8, 8, 4)
        for q0, q1, _, _ in inference.tile_spans(40, 8, 8, 4)
    }
    assert len(regions) == 5
    assert cache.computed == 5 * len(regions)  # each frame's tile features once


def test_feature_cache_releases_old_frames():
    cache = FeatureCache()
    calls = []
    for index in range(4):
        cache.get((index, None), lambda index=index: calls.append(index) or index)
    assert cache.get((2, None), lambda: 'again') == 2 and calls == [0, 1, 2, 3]
    cache.release_before(2)
    assert cache.frames() == [2, 3] and len(cache) == 2 and cache.peak == 4
    assert cache.get((0, None), lambda: 'recomputed') == 'recomputed'
    assert (cache.computed, cache.reused) == (5, 1)


@pytest.mark.parametrize('padding', inference.PADDINGS)
@pytest.mark.parametrize('length', [1, 2, 3, 4, 5, 6, 11])
def test_sliding_windows_equal_clip_windows_and_hold_few_frames(padding, length):
    """The streamed windows (the clip's length unknown until it ends) are the clip's windows."""
    try:
        expected = inference.clip_windows(length, 5, padding)
    except inference.InferenceError as e:
        with pytest.raises(inference.InferenceError, match=str(e).split(';')[0]):
            list(
                video.sliding_windows(
                    iter(range(length)), 5, padding, lambda n: inference.clip_windows(n, 5, padding)
                )
            )
        return
    got = []
    for center, window, held in video.sliding_windows(
        iter(range(length)), 5, padding, lambda n: inference.clip_windows(n, 5, padding)
    ):
        assert all(held[i] == i for i in window)
        assert len(held) <= 2 * 5
        got.append(window)
    assert got == expected


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_the_two_halves_hold_every_convolution_once(variant):
    """bench.flops: the whole model's conv FLOPs are num_frame x one frame's features plus
    the window half, so the cache saves exactly (num_frame - 1) x the features' FLOPs."""
    import tensorflow as tf

    from bench.flops import graph_conv_flops
    from edvr.model import build_edvr, build_frame_features, build_window_from_features

    cfg = parse_config({'model': dict(BASE, **VARIANTS[variant])})['model']
    h, w = 32, 48
    with tf.Graph().as_default():
        whole, _ = build_edvr(tf.compat.v1.placeholder(tf.float32, [1, 5, h, w, 3]), cfg)
        feats = build_frame_features(
            tf.compat.v1.placeholder(tf.float32, [1, h, w, 3]), cfg, reuse=True
        )
        window, _ = build_window_from_features(
            [tf.compat.v1.placeholder(tf.float32, [5] + f.shape.as_list()[1:]) for f in feats],
            tf.compat.v1.placeholder(tf.float32, [1, h, w, 3]),
            cfg,
            reuse=True,
        )
        per_frame = graph_conv_flops(feats)['total']
        assert per_frame > 0
        assert (
            graph_conv_flops([whole])['total']
            == 5 * per_frame + graph_conv_flops([window])['total']
        )


def test_cached_stream_in_bfloat16_equals_window_by_window(tmp_path):
    """--precision mixed: the cached halves run in bfloat16 (the cached features are bfloat16)
    and give what the whole bfloat16 model gives on each window."""
    import tensorflow as tf

    cfg = parse_config({'model': dict(BASE)})['model']
    random_checkpoint(cfg, tmp_path / 'model', seed=5, offset_scale=2.0)
    restorer = inference.Restorer(cfg, str(tmp_path / 'model'), compute_dtype=tf.bfloat16)
    try:
        clip = np.random.default_rng(3).uniform(0, 1, (FRAMES, 12, 20, 3)).astype(np.float32)
        expected = [
            restorer(clip[w]) for w in inference.clip_windows(FRAMES, 5, 'reflection_circle')
        ]
        sink = ListSink()
        inference.restore_stream(restorer, ListSource(clip), sink, progress=False)
        _, feats = restorer.feature_tower(12, 20)
        assert all(f.dtype == tf.bfloat16 for f in feats)
        worst = max(np.abs(got - want).max() for (_, got), want in zip(sink.frames, expected))
        print(f'bfloat16 cached vs window by window: max difference {worst:.3g}')
        assert worst < 1e-5
    finally:
        restorer.close()
