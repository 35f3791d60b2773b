"""The model's speed rewrites keep BasicSR's numbers: LeakyReLU's output-based gradient,
the offset/mask Split of the DCN pack, and doubling offsets before the upsampling."""

import numpy as np
import tensorflow as tf

from edvr.model import layers


def test_lrelu_value_and_gradient_equal_tf_leaky_relu():
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32))
    x = tf.concat([x, tf.zeros([2, 5, 7, 1])], -1)  # zeros take the negative slope in both
    dy = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 7, 4)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = layers.lrelu(x), tf.nn.leaky_relu(x, alpha=layers.LRELU_SLOPE)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(
        tape.gradient(ours, x, dy).numpy(), tape.gradient(theirs, x, dy).numpy()
    )


def test_upsampling_doubled_offsets_is_bit_identical():
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 6, 10, 4)).astype(np.float32) * 9)
    np.testing.assert_array_equal(
        layers.upsample_bilinear(x * 2).numpy(), (layers.upsample_bilinear(x) * 2).numpy()
    )


def test_dcn_pack_graph_has_no_strided_slice_of_the_offsets():
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 8])
        y, offsets = layers.dcn_pack(x, x, 8, deformable_groups=2)
        tf.compat.v1.gradients(y, [x])
        raw = graph.get_operation_by_name('dcn/offset_mask_conv/BiasAdd').outputs[0]
        types = {op.type for op in graph.get_operations()}
    assert offsets.shape.as_list() == [1, 8, 8, 2 * 2 * 9]
    assert [op.type for op in raw.consumers()] == ['SplitV']
    assert 'StridedSliceGrad' not in types


def _loss_and_gradients(cfg, frames, weights, lrelu):
    """Loss and gradients of a graph-mode EDVR (grappler and oneDNN fusions on) whose
    LeakyReLU is ``lrelu`` everywhere."""
    from edvr.model import (
        edvr as edvr_module,
        feature_extraction,
        pcd_alignment,
        reconstruction,
        tsa_fusion,
    )

    modules = (feature_extraction, pcd_alignment, reconstruction, tsa_fusion)
    saved = [module.lrelu for module in modules]
    for module in modules:
        module.lrelu = lrelu
    try:
        with tf.Graph().as_default():
            inputs = tf.compat.v1.placeholder(tf.float32, frames.shape)
            output, _ = edvr_module.build_edvr(inputs, cfg)
            loss = tf.reduce_sum(output * weights)
            variables = tf.compat.v1.trainable_variables()
            grads = tf.compat.v1.gradients(loss, variables)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                values = {v.op.name: v for v in variables}
                # The same random weights for both builds: a seeded draw per variable name.
                for name, variable in sorted(values.items()):
                    seed = sum(map(ord, name))
                    sess.run(
                        variable.assign(
                            np.random.default_rng(seed)
                            .normal(0, 0.1, variable.shape)
                            .astype(np.float32)
                        )
                    )
                return sess.run([loss, grads], {inputs: frames})
    finally:
        for module, function in zip(modules, saved):
            module.lrelu = function


def test_training_graph_with_fused_lrelu_matches_tf_gradients():
    """The output-based LeakyReLU gradient lets grappler fuse conv, bias and LeakyReLU in the
    training graph; loss and every gradient must equal those of TF's own LeakyReLU."""
    from edvr.config import parse_config

    cfg = parse_config(
        {
            'model': dict(
                num_feat=16,
                num_frame=3,
                deformable_groups=2,
                num_extract_block=1,
                num_reconstruct_block=1,
                num_upsample_feat=16,
            )
        }
    )['model']
    rng = np.random.default_rng(3)
    frames = rng.uniform(size=(2, 3, 16, 20, 3)).astype(np.float32)
    weights = rng.normal(size=(2, 64, 80, 3)).astype(np.float32)
    plain = lambda x: tf.nn.leaky_relu(x, alpha=layers.LRELU_SLOPE)
    loss_ours, grads_ours = _loss_and_gradients(cfg, frames, weights, layers.lrelu)
    loss_tf, grads_tf = _loss_and_gradients(cfg, frames, weights, plain)
    np.testing.assert_allclose(loss_ours, loss_tf, rtol=1e-5)
    for ours, theirs in zip(grads_ours, grads_tf):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
