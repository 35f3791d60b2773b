"""bench.video_memory end to end at tiny sizes: it makes the clips, runs edvr.infer in child
processes and reads their peak memory."""

import os

import av

from bench import video_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_clips_have_the_frames_and_audio_asked(tmp_path):
    path = str(tmp_path / 'clip.mp4')
    video_memory.write_clip(path, 7, 32, 48)
    with av.open(path) as container:
        assert [s.type for s in container.streams] == ['video', 'audio']
        assert len(list(container.decode(video=0))) == 7


def test_measures_each_length_in_its_own_process(tmp_path):
    config = os.path.join(ROOT, 'configs', 'edvr_tiny.yaml')  # 5 frames: clips of 5 at least
    results = video_memory.measure([5, 8], 32, 48, config, str(tmp_path))
    assert [r['frames'] for r in results['runs']] == [5, 8]
    for run in results['runs']:
        assert 100 < run['peak_rss_mb'] < 20000  # TensorFlow alone takes hundreds of MB
        assert run['seconds_per_frame'] > 0
    assert os.path.isfile(tmp_path / 'restored_8.mp4')
    lines = video_memory.format_results(results)
    assert lines[-1].startswith('peak spread (max - min) / min: ')
