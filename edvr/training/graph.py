"""The training graph of EDVR: fed batches, the model, loss, train ops, monitors and
validation (``TrainingGraph``), and the tf.data batches that feed it (``training_dataset``)."""

import tensorflow as tf

from edvr.data import pipeline
from edvr import SCALE
from edvr.model import build_edvr, center_frame_index
from edvr.training import monitor
from edvr.training.losses import pixel_loss
from edvr.training.optimizer import build_train_ops
from edvr.validation import Evaluator


class TrainingGraph:
    """The training graph: fed batches, the model, loss, train ops, monitors, validation."""

    def __init__(self, config, data_dir, val_spec, wrap_optimizer=None, compute_dtype=tf.float32):
        """compute_dtype: the model's (edvr.precision.compute_dtype); loss and optimizer are
        float32 either way."""
        model_cfg, train_cfg, data_cfg = config['model'], config['train'], config['data']
        batch, crop, frames = train_cfg['batch_size'], data_cfg['lr_crop'], model_cfg['num_frame']
        tf.compat.v1.set_random_seed(train_cfg['seed'])
        self.global_step = tf.compat.v1.train.get_or_create_global_step()
        self.lr_frames = tf.compat.v1.placeholder(
            tf.float32, [batch, frames, crop, crop, 3], 'lr_frames'
        )
        self.gt = tf.compat.v1.placeholder(tf.float32, [batch, SCALE * crop, SCALE * crop, 3], 'gt')
        self.output, endpoints = build_edvr(self.lr_frames, model_cfg, compute_dtype=compute_dtype)
        self.loss = pixel_loss(
            self.output,
            self.gt,
            train_cfg['loss'],
            train_cfg['loss_reduction'],
            train_cfg['charbonnier_eps'],
        )
        self.train_ops = build_train_ops(
            self.loss, self.global_step, train_cfg, wrap_optimizer=wrap_optimizer
        )
        self.offsets, self.max_offset = monitor.offset_magnitudes(endpoints['dcn_offsets'])
        scalars = [
            tf.compat.v1.summary.scalar('train/loss', self.loss),
            tf.compat.v1.summary.scalar('train/lr', self.train_ops.lr),
            tf.compat.v1.summary.scalar('offsets/max_mean_abs', self.max_offset),
        ]
        scalars += [
            tf.compat.v1.summary.scalar(f'offsets/{name}', value)
            for name, value in self.offsets.items()
        ]
        self.scalar_summaries = tf.compat.v1.summary.merge(scalars)
        center = center_frame_index(model_cfg)
        strip = monitor.sample_strip(self.lr_frames[:, center], self.output, self.gt)
        self.image_summary = tf.compat.v1.summary.image('train/bicubic_edvr_gt', strip)
        self.evaluator = (
            Evaluator(
                data_dir,
                val_spec,
                config,
                crop_border=train_cfg['val_crop_border'],
                reuse=True,
                compute_dtype=compute_dtype,
            )
            if val_spec is not None
            else None
        )
        self.saver = tf.compat.v1.train.Saver(max_to_keep=None)
        self.init = tf.compat.v1.global_variables_initializer()


def training_dataset(config, data_dir, train_spec, start_step, rank_size=1, rank_id=0):
    """The batches of this rank (of ``rank_size``) from step ``start_step`` on, as the config
    says; ``train.batch_size`` is per rank."""
    train_cfg, data_cfg = config['train'], config['data']
    return pipeline.training_dataset(
        data_dir,
        train_spec,
        num_frames=config['model']['num_frame'],
        lr_crop=data_cfg['lr_crop'],
        batch_size=train_cfg['batch_size'],
        seed=train_cfg['seed'],
        start_sample=start_step * train_cfg['batch_size'] * rank_size,
        use_flip=data_cfg['use_flip'],
        use_rotation=data_cfg['use_rotation'],
        use_temporal_reverse=data_cfg['use_temporal_reverse'],
        num_parallel_calls=data_cfg['num_parallel_calls'],
        prefetch=data_cfg['prefetch'],
        rank_size=rank_size,
        rank_id=rank_id,
    )
