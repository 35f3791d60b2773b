"""Data-parallel sharding of the training stream (RANK_SIZE > 1): each rank gets every
rank_size-th sample of the single-process stream, so ranks never train on the same batch."""

import numpy as np
import pytest

from edvr.data import pipeline, reds


def samples(dataset, count):
    """The first sample of each of the first ``count`` batches, as {'lr', 'gt'} arrays."""
    iterator = iter(dataset)
    return [{k: v.numpy()[0] for k, v in next(iterator).items()} for _ in range(count)]


def test_ranks_split_each_epoch_into_disjoint_windows():
    num_windows, rank_size = 6, 2
    shares = [
        [
            (int(s), int(w))
            for s, w in pipeline.rank_order(num_windows, 5, 0, rank_size, rank).take(
                3 * num_windows // 2
            )
        ]
        for rank in range(rank_size)
    ]
    assert [s for s, _ in shares[0]] == list(range(0, 18, 2))
    assert [s for s, _ in shares[1]] == list(range(1, 18, 2))
    stream = [(int(s), int(w)) for s, w in pipeline.epoch_order(num_windows, 5, 0).take(18)]
    assert sorted(shares[0] + shares[1]) == stream
    for epoch in range(3):
        windows = [{w for s, w in share if s // num_windows == epoch} for share in shares]
        assert not windows[0] & windows[1], f'both ranks got a window in epoch {epoch}'
        assert windows[0] | windows[1] == set(range(num_windows))


def test_rank_streams_interleave_to_the_single_process_stream(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    kwargs = dict(num_frames=3, lr_crop=8, batch_size=1, seed=11, use_temporal_reverse=True)
    single = samples(pipeline.training_dataset(mini_dataset, spec, **kwargs), 8)
    ranks = [
        samples(pipeline.training_dataset(mini_dataset, spec, rank_size=2, rank_id=r, **kwargs), 4)
        for r in (0, 1)
    ]
    for k, expected in enumerate(single):
        got = ranks[k % 2][k // 2]
        np.testing.assert_array_equal(got['lr'], expected['lr'], err_msg=f'sample {k}')
        np.testing.assert_array_equal(got['gt'], expected['gt'], err_msg=f'sample {k}')
    assert not any(np.array_equal(a['lr'], b['lr']) for a, b in zip(*ranks))


def test_rank_stream_resumes_at_the_global_sample(mini_dataset):
    spec = reds.read_split(mini_dataset, 'train')
    kwargs = dict(num_frames=5, lr_crop=8, batch_size=2, seed=4, rank_size=2, rank_id=1)
    full = samples(pipeline.training_dataset(mini_dataset, spec, **kwargs), 3)
    # after one step of 2 samples per rank, 4 samples of the global stream are consumed
    resumed = samples(pipeline.training_dataset(mini_dataset, spec, start_sample=4, **kwargs), 2)
    for a, b in zip(full[1:], resumed):
        np.testing.assert_array_equal(a['lr'], b['lr'])


@pytest.mark.parametrize('rank_size, rank_id', [(0, 0), (2, 2), (2, -1)])
def test_bad_rank_is_refused(rank_size, rank_id):
    with pytest.raises(
        ValueError,
        match=rf'rank_id, rank_size: expected 0 <= rank_id < '
        rf'rank_size, got rank_id {rank_id}, rank_size {rank_size}',
    ):
        pipeline.rank_order(5, 0, 0, rank_size, rank_id)
