"""What the short demo's quality depends on (docs/mixed_precision.md, Quality): the
initialisation, the DCN offsets' early speed and a step-based budget.

With PyTorch's default conv init (BasicSR's) the signal shrinks about 2.5x per conv and
LeakyReLU: at the input of EDVR-tiny's last conv it was 6e-4 of the first features' scale,
and the 1000-step demo sat at its bilinear base for a random 500 to over 1000 steps (below
bicubic at one seed in three). With Kaiming init the signal keeps its scale (ratio about 2)
and the zero-initialised last conv makes the starting point exactly the bilinear base. With
Kaiming init in the offset branch too, the offsets moved 5-10x faster and one run in six
exploded (l1 offsets above 70 pixels by step 80); the offset branch keeps the small init.
"""

import os

import numpy as np
import tensorflow as tf

from edvr.training import graph as training_graph
from edvr.config import load_config
from edvr.data import reds
from edvr.model import build_edvr, center_frame_index
from edvr.model.layers import upsample_bilinear

CONFIGS = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')
DEMO = os.path.join(CONFIGS, 'edvr_tiny.yaml')
# Signal at the last conv's input over the first features' (conv_first + LeakyReLU), both as
# standard deviations: about 2 with the Kaiming init, 6e-4 with PyTorch's default.
MIN_SIGNAL_RATIO = 0.1


def test_demo_model_starts_at_its_bilinear_base_with_a_full_scale_signal():
    cfg = load_config(DEMO)['model']
    frames = np.random.RandomState(0).uniform(0, 1, (2, cfg['num_frame'], 16, 16, 3))
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)
        inputs = tf.constant(frames, tf.float32)
        output, endpoints = build_edvr(inputs, cfg)
        base = upsample_bilinear(inputs[:, center_frame_index(cfg)], 4)
        last_input = graph.get_operation_by_name('edvr/reconstruction/conv_last/Conv2D').inputs[0]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            got = sess.run(
                {
                    'output': output,
                    'base': base,
                    'residual': endpoints['residual'],
                    'first': endpoints['features'][0],
                    'last_input': tf.identity(last_input),
                }
            )
    assert not got['residual'].any()
    np.testing.assert_array_equal(got['output'], got['base'])
    ratio = got['last_input'].std() / got['first'].std()
    assert ratio > MIN_SIGNAL_RATIO, (
        f'signal at the last conv is {ratio:.2g} of the first features\' scale, expected > '
        f'{MIN_SIGNAL_RATIO}: the init lets it vanish through the network'
    )


def test_demo_trains_a_fixed_number_of_steps():
    # A wall-clock limit trained fewer steps on a loaded machine, and a worse demo.
    train = load_config(DEMO)['train']
    assert train['max_minutes'] is None and train['max_steps'] == 1000


# Mean |offset| of the fastest DCN after 6 steps on one batch: 0.015 pixel with the offset
# branch's small init, 0.08 with Kaiming init there (the runs whose offsets could explode).
MAX_EARLY_OFFSET = 0.03


def test_demo_offsets_start_slowly(tiny_data):
    config = load_config(DEMO)
    config['train']['batch_size'] = 2
    config['data']['lr_crop'] = 16
    spec = reds.check_dataset(tiny_data, 'train')
    with tf.Graph().as_default():
        batch = tf.compat.v1.data.make_one_shot_iterator(
            training_graph.training_dataset(config, tiny_data, spec, 0)
        ).get_next()
        graph = training_graph.TrainingGraph(config, tiny_data, val_spec=None)
        with tf.compat.v1.Session() as sess:
            sess.run(graph.init)
            values = sess.run(batch)
            feed = {graph.lr_frames: values['lr'], graph.gt: values['gt']}
            for _ in range(6):
                sess.run(graph.train_ops.full, feed)
            moved = sess.run(graph.max_offset, feed)
    # The first step moves only the zero-initialised last conv; the offsets follow after.
    assert 0 < moved < MAX_EARLY_OFFSET, moved
