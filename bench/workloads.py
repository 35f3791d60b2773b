"""The EDVR workloads that the model benchmarks (bench/test_edvr_bench.py), the profiler
(bench.profile) and the report (bench.report) share, built from the project's own code:

- ``TrainStep``: one step of ``edvr.train`` (edvr.training.graph's TrainingGraph: model,
  loss, Adam train op), fed a (b, t, crop, crop, 3) LR batch and its (b, 4crop, 4crop, 3) GT;
  float32, or with ``compute_dtype=tf.bfloat16`` mixed precision (edvr.precision), as
  ``InferFrame``;
- ``InferFrame``: one frame of ``edvr.infer`` (edvr.inference's Restorer on a (t, h, w, 3)
  window, from a checkpoint written here) -> (4h, 4w, 3); ``cached=True``: one frame as a
  video streams through the feature cache (the new frame's features, then the window from
  cached ones);
- ``InputPipeline``: batches of ``edvr.data.pipeline.training_dataset`` read from a synthetic
  dataset with REDS-sized frames;
- ``ConvRate``: the 3x3, 64 -> 64 ``tf.nn.conv2d`` whose FLOP rate sets the floor;
- ``OpenVinoFrame``: the peer, OpenVINO's frame on the same weights and window as an
  ``InferFrame`` (bench.openvino_peer: BasicSR's EDVR converted, f32 and bf16).

Each has ``run()`` (one unit of work), ``close()``, and what the report needs (FLOPs, samples).
``SIZES`` holds the full-size settings and a quick, tiny set for tests.
"""

import os

import numpy as np
import tensorflow as tf

from bench.flops import conv2d_flops, graph_conv_flops
from edvr.config import load_config
from edvr.session import session_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZES = {
    # The measurements: EDVR-M, batch 4 of 5 frames of 64x64, one 180x320 frame.
    'full': dict(
        config=os.path.join(REPO, 'configs', 'edvr_m.yaml'),
        batch=4,
        crop=64,
        frame=(180, 320),
        conv_shape=(20, 64, 64, 64),
        gt_frame=(720, 1280),
        pipeline_batches=20,
    ),
    # Seconds in all: tests exercise the report end to end with these.
    'quick': dict(
        config=os.path.join(REPO, 'configs', 'edvr_tiny.yaml'),
        batch=2,
        crop=16,
        frame=(16, 24),
        conv_shape=(4, 16, 16, 16),
        gt_frame=(64, 96),
        pipeline_batches=4,
    ),
}


def load_sized_config(size, threads=None):
    """The config of ``SIZES[size]`` with batch size, crop and ``threads`` applied."""
    settings = SIZES[size]
    config = load_config(settings['config'])
    config['train']['batch_size'] = settings['batch']
    config['data']['lr_crop'] = settings['crop']
    config['train']['tsa_iter'] = 0  # no warm-up: the step updates every variable
    if threads:
        config['threads'].update(threads)
    return config


class _Session:
    def close(self):
        self.sess.close()


class ConvRate(_Session):
    """``tf.nn.conv2d`` of an NHWC ``shape``, 3x3, C -> C, 'SAME'; ``flops`` per run."""

    def __init__(self, shape, threads=None):
        rng = np.random.default_rng(0)
        self.flops = conv2d_flops(shape)
        self.graph = tf.Graph()
        with self.graph.as_default():
            x = tf.compat.v1.Variable(rng.normal(size=shape).astype(np.float32))
            w = tf.compat.v1.Variable(
                rng.normal(size=(3, 3, shape[3], shape[3])).astype(np.float32) * 0.05
            )
            self.target = tf.nn.conv2d(x, w, [1, 1, 1, 1], 'SAME').op  # run, not fetched
            init = tf.compat.v1.global_variables_initializer()
        self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config(threads))
        self.sess.run(init)

    def run(self):
        self.sess.run(self.target)


class TrainStep(_Session):
    """One training step of ``edvr.train`` on a random batch.

    ``config``: a full config (see ``load_sized_config``); batch (b, t, crop, crop, 3).
    ``fetches`` are those of ``edvr.training.loop.run_loop`` on an ordinary step (train op,
    loss, lr); ``flops``: ``graph_conv_flops`` of them (forward and backward).
    """

    def __init__(self, config, compute_dtype=tf.float32):
        from edvr.training.graph import TrainingGraph  # heavy imports only for this workload

        self.config = config
        batch, crop = config['train']['batch_size'], config['data']['lr_crop']
        frames = config['model']['num_frame']
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.model = TrainingGraph(
                config, data_dir=None, val_spec=None, compute_dtype=compute_dtype
            )
            self.fetches = {
                'op': self.model.train_ops.full,
                'loss': self.model.loss,
                'lr': self.model.train_ops.lr,
            }
            self.traced_fetches = list(self.fetches.values())
            self.flops = graph_conv_flops(self.traced_fetches)
        rng = np.random.default_rng(0)
        uniform = lambda *shape: rng.uniform(size=shape).astype(np.float32)  # as the pipeline's
        self.feed = {
            self.model.lr_frames: uniform(batch, frames, crop, crop, 3),
            self.model.gt: uniform(batch, 4 * crop, 4 * crop, 3),
        }
        self.samples = batch
        self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config(config['threads']))
        self.sess.run(self.model.init)

    def run(self, **kwargs):
        """One step; ``kwargs`` go to ``Session.run`` (options, run_metadata)."""
        return self.sess.run(self.fetches, self.feed, **kwargs)


def write_random_checkpoint(model_cfg, directory, offset_pixels=1.5, seed=0):
    """A checkpoint of ``model_cfg`` with random weights into ``directory``; returns its prefix.

    The offset convs, zero at initialisation, get random kernels scaled so that each DCN's
    offsets have a standard deviation of ``offset_pixels`` (on random frames), so the DCNs
    sample off the grid as a trained model does. Calibrated level by level (L3, L2, L1,
    cascading: each level's input depends on the coarser ones) on (1, t, 32, 32, c) frames.
    """
    from edvr.checkpoint import assign_weights
    from edvr.model import build_edvr

    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        frames = tf.compat.v1.placeholder(
            tf.float32, [1, model_cfg['num_frame'], 32, 32, model_cfg['num_in_ch']]
        )
        _, endpoints = build_edvr(frames, model_cfg)
        variables = tf.compat.v1.global_variables()
        kernels = {v.op.name: v for v in variables}
        feed = {frames: rng.uniform(size=frames.shape.as_list()).astype(np.float32)}
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for level, offsets in endpoints['dcn_offsets'].items():
                name = f'edvr/pcd_alignment/{level}/dcn/offset_mask_conv/kernel'
                kernel = kernels[name]
                value = rng.normal(size=kernel.shape).astype(np.float32)
                assign_weights(sess, {name: value}, [kernel])
                # Offsets are linear in the offset columns of the kernel (bias 0): rescale them.
                std = float(np.std(sess.run(offsets, feed)))
                value[..., : offsets.shape[-1]] *= offset_pixels / max(std, 1e-12)
                assign_weights(sess, {name: value}, [kernel])
            return saver.save(sess, os.path.join(directory, 'random'))


class InferFrame(_Session):
    """One frame of ``edvr.infer``: its Restorer on a random (t, h, w, 3) window.

    ``cached``: the frame as edvr.infer streams a clip with the feature cache: the features of
    the one frame entering the window, then alignment, fusion and reconstruction from the
    features of the window's frames (the others cached). Otherwise the whole model on the
    window, as without the cache (``--no_feature_cache``).
    ``flops``: the forward convolution FLOPs of that work at this frame size.
    """

    def __init__(
        self, config, height, width, checkpoint_dir, cached=False, compute_dtype=tf.float32
    ):
        from edvr.inference import Restorer

        model_cfg = config['model']
        checkpoint = self.checkpoint = write_random_checkpoint(model_cfg, checkpoint_dir)
        self.restorer = Restorer(
            model_cfg, checkpoint, threads=config['threads'], compute_dtype=compute_dtype
        )
        self.sess = self.restorer.sess
        self.cached = cached
        rng = np.random.default_rng(0)
        self.window = rng.uniform(size=(model_cfg['num_frame'], height, width, 3)).astype(
            np.float32
        )
        if cached:
            self.frame, feats = self.restorer.feature_tower(height, width)
            self.placeholders, self.center, self.output = self.restorer.window_tower(height, width)
            per_frame = [self.sess.run(feats, {self.frame: f[None]}) for f in self.window]
            self.feed = {
                p: np.concatenate([f[level] for f in per_frame])
                for level, p in enumerate(self.placeholders)
            }
            self.feed[self.center] = self.window[None, self.restorer.center]
            self.features = feats
            self.traced_fetches = list(feats) + [self.output]
        else:
            self.frames, self.output = self.restorer.tower(height, width)
            self.feed = {self.frames: self.window[None]}
            self.traced_fetches = [self.output]
        self.flops = graph_conv_flops(self.traced_fetches)
        self.samples = 1

    def run(self, **kwargs):
        """One frame as ``edvr.infer`` restores it; with ``kwargs`` (a traced run: options,
        run_metadata) the same work through ``Session.run`` directly."""
        if not self.cached:
            if not kwargs:
                return self.restorer(self.window)
            return self.sess.run(self.output, self.feed, **kwargs)
        self.sess.run(self.features, {self.frame: self.window[None, -1]}, **kwargs)
        return self.sess.run(self.output, self.feed, **kwargs)


class OpenVinoFrame:
    """OpenVINO's frame beside ours: BasicSR's EDVR on the weights and window of ``frame``
    (an ``InferFrame``, not cached), converted and compiled for CPU in f32 and bf16 in a
    process of its own (bench.openvino_peer). ``runner(precision)``: a callable restoring the
    window once; ``version``, ``setup_seconds``: the peer's. ``threads``: the config's threads
    section (OpenVINO gets its intra-op count)."""

    def __init__(self, frame, threads=None):
        from bench.openvino_peer import OpenVinoPeer
        from edvr.checkpoint import read_values
        from edvr.session import thread_counts

        self.peer = OpenVinoPeer(
            frame.restorer.cfg,
            read_values(frame.checkpoint),
            frame.window,
            threads=thread_counts(threads)[0],
        )
        self.version, self.setup_seconds = self.peer.version, self.peer.setup_seconds

    def runner(self, precision):
        return lambda: self.peer.run(precision)

    def close(self):
        self.peer.close()


def ensure_synthetic(data_dir, gt_frame):
    """A small synthetic dataset in ``data_dir`` (generated on first use), GT frames of
    ``gt_frame`` (h, w): two training clips of 8 frames, one validation clip."""
    from edvr.data import synthetic

    options = synthetic.SyntheticOptions(
        gt_height=gt_frame[0],
        gt_width=gt_frame[1],
        train_photos=('astronaut', 'brick'),
        val_photos=('chelsea',),
        train_clips_per_photo=1,
        train_frames=8,
        val_frames=5,
    )
    return synthetic.ensure_dataset(data_dir, options, log=lambda message: None)


class InputPipeline(_Session):
    """``pipeline.training_dataset`` batches from a synthetic dataset in ``data_dir``
    (generated there first, GT ``gt_frame`` as REDS' 720x1280). ``run()`` takes
    ``batches`` batches (``samples`` samples) from the running pipeline."""

    def __init__(self, config, data_dir, gt_frame, batches):
        from edvr.data import pipeline, reds

        ensure_synthetic(data_dir, gt_frame)
        spec = reds.read_split(data_dir, 'train')
        train_cfg, data_cfg = config['train'], config['data']
        self.graph = tf.Graph()
        with self.graph.as_default():
            dataset = pipeline.training_dataset(
                data_dir,
                spec,
                num_frames=config['model']['num_frame'],
                lr_crop=data_cfg['lr_crop'],
                batch_size=train_cfg['batch_size'],
                num_parallel_calls=data_cfg['num_parallel_calls'],
                prefetch=data_cfg['prefetch'],
            )
            self.next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        self.batches = batches
        self.samples = batches * train_cfg['batch_size']
        self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config(config['threads']))
        self.sess.run(self.next_batch)  # start the pipeline (opens files, fills buffers)

    def run(self):
        for _ in range(self.batches):
            self.sess.run(self.next_batch)
