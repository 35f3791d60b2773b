"""edvr.train --device npu with RANK_SIZE=8 reads this rank's shard of the sample stream, and
resumes it at the global sample (all ranks' samples so far), against the fake npu_bridge."""

import sys

import tensorflow as tf

from tests.train.tiny_runs import tiny_config, train_argv, write_config
from edvr import train as train_module
from edvr.data import pipeline
from tests.tbe.test_npu_training import _eight_devices, _fake_bridge


def test_rank_reads_its_shard_and_resumes_at_the_global_sample(tiny_data, tmp_path, monkeypatch):
    log = _fake_bridge(monkeypatch)
    monkeypatch.setattr(
        sys.modules['npu_bridge.hccl.hccl_ops'],
        'broadcast',
        lambda tensor, root_rank: [tf.identity(tensor[0])],
    )
    for name, value in _eight_devices(tmp_path, rank=0).items():
        monkeypatch.setenv(name, value)
    requests = []
    real_dataset = pipeline.training_dataset

    def recording_dataset(*args, **kwargs):
        requests.append(
            {k: kwargs[k] for k in ('rank_size', 'rank_id', 'start_sample', 'batch_size')}
        )
        return real_dataset(*args, **kwargs)

    monkeypatch.setattr(pipeline, 'training_dataset', recording_dataset)
    output = str(tmp_path / 'run')
    for max_steps, resume in ((1, []), (2, ['--resume'])):
        config = write_config(
            tmp_path / 'tiny.yaml', tiny_config(max_steps=max_steps, checkpoint_every=1)
        )
        assert (
            train_module.main(train_argv(config, tiny_data, output, '--device', 'npu', *resume))
            == 0
        )
    assert requests == [
        dict(rank_size=8, rank_id=0, start_sample=0, batch_size=2),
        dict(rank_size=8, rank_id=0, start_sample=1 * 2 * 8, batch_size=2),
    ]
    assert any(c[0] == 'distributed' for c in log.calls)
