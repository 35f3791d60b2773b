"""edvr.infer on video files end to end: a small H.264 + AAC clip made with PyAV from the
synthetic frames; what is kept (frames, 4x size, rate, time base, timestamps, audio), the
restored frames against the PNG path, PNG folders both ways, and each bad input's error
with no output left behind."""

import fractions
import os
import re

import av
import numpy as np
import pytest
from PIL import Image

from edvr import cli, freeze, infer, inference
from edvr.config import ConfigError, load_run_config, parse_config
from tests.model.model_testing import random_checkpoint
from tests.video.video_testing import probe, synthetic_frames, write_video

TINY = dict(
    num_feat=8,
    num_frame=3,
    deformable_groups=1,
    num_extract_block=1,
    num_reconstruct_block=1,
    num_upsample_feat=8,
)
FRAMES = 9
PROGRESS = re.compile(r'\[\d\d:\d\d')  # a line of tqdm's bar: [elapsed<remaining, rate]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A run folder as edvr.train leaves it: a checkpoint and config.yaml (random weights)."""
    folder = tmp_path_factory.mktemp('run')
    random_checkpoint(
        parse_config({'model': TINY})['model'], folder / 'model', seed=3, offset_scale=2.0
    )
    (folder / 'config.yaml').write_text(
        'model:\n' + ''.join(f'  {k}: {v}\n' for k, v in TINY.items())
    )
    return str(folder)


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    """(path of an H.264 + AAC mp4 of FRAMES synthetic 32x48 frames at 25 fps, its frames)."""
    frames = synthetic_frames(FRAMES)
    path = tmp_path_factory.mktemp('clip') / 'clip.mp4'
    write_video(path, frames)
    return str(path), frames


def run(run_dir, input_path, output_path, capsys, *extra):
    code = infer.main(
        ['--checkpoint', run_dir, '--input', str(input_path), '--output', str(output_path), *extra]
    )
    return code, capsys.readouterr().err


def leftovers(folder):
    """Temporary outputs edvr.video left in ``folder`` (should be none)."""
    return [n for n in os.listdir(folder) if '.partial-' in n]


def png_folder(folder, frames):
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f'{i:08d}.png')
    return folder


def read_pngs(folder):
    return np.stack([np.asarray(Image.open(folder / n)) for n in sorted(os.listdir(folder))])


def test_video_keeps_frames_size_rate_timestamps_and_audio(run_dir, clip, tmp_path, capsys):
    code, err = run(run_dir, clip[0], tmp_path / 'restored.mp4', capsys)
    assert code == 0, err
    assert f'{FRAMES}/{FRAMES}' in err and re.search(r'frame/s|s/frame', err)  # progress bar
    source, restored = probe(clip[0]), probe(tmp_path / 'restored.mp4')
    assert restored['codec'] == 'h264'
    assert restored['frames'].shape == (FRAMES, 4 * 32, 4 * 48, 3)
    assert restored['pts'] == source['pts'] and restored['time_base'] == source['time_base']
    assert restored['rate'] == source['rate'] == 25
    assert restored['audio'] == source['audio']  # copied packet for packet
    ((codec, seconds),) = restored['audio']
    # AAC codes 1024-sample frames plus the encoder's 1024-sample priming: at 16 kHz the
    # packets may last up to 2 * 64 ms more than the FRAMES / 25 s of sine written.
    assert codec == 'aac' and FRAMES / 25 <= seconds <= FRAMES / 25 + 0.128
    assert leftovers(tmp_path) == []


def test_restored_frames_equal_the_png_path(run_dir, clip, tmp_path, capsys):
    """The PNG path on the decoded input frames is the oracle. With a lossless codec (FFV1
    in RGB) the video equals it exactly; with lossless H.264 (crf 0) it equals the oracle's
    frames taken through the same RGB -> yuv420p -> RGB conversion (chroma at half
    resolution), exactly: the encoder and decoder add no error of their own."""
    decoded = probe(clip[0])['frames']
    code, err = run(
        run_dir, png_folder(tmp_path / 'decoded', decoded), tmp_path / 'png_path', capsys
    )
    assert code == 0, err
    oracle = read_pngs(tmp_path / 'png_path')
    assert oracle.shape == (FRAMES, 128, 192, 3)

    assert run(run_dir, clip[0], tmp_path / 'ffv1.mkv', capsys, '--codec', 'ffv1')[0] == 0
    np.testing.assert_array_equal(probe(tmp_path / 'ffv1.mkv')['frames'], oracle)

    assert run(run_dir, clip[0], tmp_path / 'frames', capsys)[0] == 0  # video -> PNGs
    assert sorted(os.listdir(tmp_path / 'frames')) == [f'{i:08d}.png' for i in range(FRAMES)]
    np.testing.assert_array_equal(read_pngs(tmp_path / 'frames'), oracle)

    assert run(run_dir, clip[0], tmp_path / 'lossless.mp4', capsys, '--crf', '0')[0] == 0
    through_yuv = np.stack(
        [
            av.VideoFrame.from_ndarray(frame, format='rgb24')
            .reformat(format='yuv420p')
            .to_ndarray(format='rgb24')
            for frame in oracle
        ]
    )
    np.testing.assert_array_equal(probe(tmp_path / 'lossless.mp4')['frames'], through_yuv)
    assert np.abs(through_yuv.astype(int) - oracle).max() > 0  # the conversion is not a no-op


def test_pngs_to_video_takes_fps(run_dir, clip, tmp_path, capsys):
    folder = png_folder(tmp_path / 'in', clip[1][:4])
    code, err = run(run_dir, folder, tmp_path / 'out.mkv', capsys, '--codec', 'ffv1')
    assert code == cli.EXIT_USAGE and 'a video from PNG frames needs --fps' in err
    assert os.listdir(tmp_path) == ['in']
    code, err = run(
        run_dir, folder, tmp_path / 'out.mkv', capsys, '--codec', 'ffv1', '--fps', '12.5'
    )
    assert code == 0, err
    restored = probe(tmp_path / 'out.mkv')
    assert restored['frames'].shape == (4, 128, 192, 3) and restored['audio'] == []
    assert restored['rate'] == fractions.Fraction(25, 2)
    times = [p * restored['time_base'] for p in restored['pts']]
    assert times == [fractions.Fraction(2 * i, 25) for i in range(4)]


def test_variable_frame_rate_keeps_timestamps(run_dir, clip, tmp_path, capsys):
    pts = [0, 1, 3, 4, 8, 9, 10]  # in 1/30 s: gaps of 1, 2 and 4 frames
    write_video(tmp_path / 'vfr.mkv', clip[1][:7], rate=30, codec='ffv1', audio_codec=None, pts=pts)
    assert run(run_dir, tmp_path / 'vfr.mkv', tmp_path / 'out.mp4', capsys)[0] == 0
    source, restored = probe(tmp_path / 'vfr.mkv'), probe(tmp_path / 'out.mp4')
    source_times = [p * source['time_base'] for p in source['pts']]
    # Matroska keeps milliseconds: the gaps survive, rounded to 1 ms.
    assert source['time_base'] == fractions.Fraction(1, 1000)
    assert all(
        abs(t - fractions.Fraction(p, 30)) <= fractions.Fraction(1, 1000)
        for t, p in zip(source_times, pts)
    )
    assert [p * restored['time_base'] for p in restored['pts']] == [
        p * source['time_base'] for p in source['pts']
    ]


def test_tiling_works_with_video(run_dir, clip, tmp_path, capsys):
    code, err = run(
        run_dir,
        clip[0],
        tmp_path / 'tiled.mkv',
        capsys,
        '--codec',
        'ffv1',
        '--tile',
        '16',
        '--tile_overlap',
        '16',
        '--padding',
        'replicate',
    )
    assert code == 0, err
    assert (
        run(
            run_dir,
            clip[0],
            tmp_path / 'whole.mkv',
            capsys,
            '--codec',
            'ffv1',
            '--padding',
            'replicate',
        )[0]
        == 0
    )
    tiled, whole = probe(tmp_path / 'tiled.mkv')['frames'], probe(tmp_path / 'whole.mkv')['frames']
    assert tiled.shape == whole.shape == (FRAMES, 128, 192, 3)
    # 8-bit rounding of outputs equal to float rounding (see tests/model/test_infer.py's tiling test)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


# --- interrupted runs and bad input: a one-line error, exit 130 or 2, nothing written ------


def test_interrupted_run_leaves_no_output(run_dir, clip, tmp_path, capsys, monkeypatch):
    restore = inference.Restorer.restore
    calls = []

    def interrupt_at_the_fourth_frame(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return restore(self, *args, **kwargs)

    monkeypatch.setattr(inference.Restorer, 'restore', interrupt_at_the_fourth_frame)
    for output in ('out.mp4', 'frames'):
        calls.clear()
        code, err = run(run_dir, clip[0], tmp_path / output, capsys)
        assert (
            code == cli.EXIT_INTERRUPTED
            and f'interrupted; nothing written to {tmp_path / output}' in err
        )
        assert len(calls) == 4
        assert os.listdir(tmp_path) == []  # no output, no temporary


def bad_input_error(run_dir, input_path, output_path, capsys, *extra):
    code, err = run(run_dir, input_path, output_path, capsys, *extra)
    assert code == cli.EXIT_USAGE
    lines = [
        line
        for line in err.replace('\r', '\n').splitlines()
        if line.startswith('edvr.infer: ') and not PROGRESS.search(line)
    ]
    assert len(lines) == 1, err
    assert not os.path.exists(output_path) and leftovers(os.path.dirname(output_path)) == []
    return lines[0]


def test_a_file_that_is_not_a_video(run_dir, tmp_path, capsys):
    (tmp_path / 'notes.mp4').write_text('not a video\n' * 100)
    error = bad_input_error(run_dir, tmp_path / 'notes.mp4', tmp_path / 'out.mp4', capsys)
    assert f'--input {tmp_path / "notes.mp4"}: not a video file FFmpeg can read' in error


def test_a_video_with_zero_frames(run_dir, tmp_path, capsys):
    with av.open(str(tmp_path / 'empty.avi'), 'w') as container:
        stream = container.add_stream('ffv1', rate=25)
        stream.width, stream.height = 48, 32
        container.start_encoding()
    error = bad_input_error(run_dir, tmp_path / 'empty.avi', tmp_path / 'out.mp4', capsys)
    assert f'--input {tmp_path / "empty.avi"}: the video stream has no frames' in error


def test_a_file_without_video(run_dir, tmp_path, capsys):
    write_video(
        tmp_path / 'audio.mkv', np.zeros((0, 32, 48, 3), np.uint8), codec=None, audio_seconds=0.5
    )
    with av.open(str(tmp_path / 'audio.mkv')) as container:
        assert [s.type for s in container.streams] == ['audio']
    error = bad_input_error(run_dir, tmp_path / 'audio.mkv', tmp_path / 'out.mp4', capsys)
    assert 'holds no video stream (streams: audio)' in error


def test_frame_size_changing_mid_stream(run_dir, clip, tmp_path, capsys):
    # Raw H.264 streams concatenate: the decoder meets a new size at frame 5.
    write_video(tmp_path / 'a.h264', clip[1][:5], audio_codec=None)
    write_video(tmp_path / 'b.h264', np.ascontiguousarray(clip[1][:4, :16, :32]), audio_codec=None)
    (tmp_path / 'ab.h264').write_bytes(
        (tmp_path / 'a.h264').read_bytes() + (tmp_path / 'b.h264').read_bytes()
    )
    error = bad_input_error(run_dir, tmp_path / 'ab.h264', tmp_path / 'out.mp4', capsys)
    assert (
        f'--input {tmp_path / "ab.h264"}: frame 5 is 32x16, the stream started at 48x32; '
        f'frame sizes that change mid-stream are not supported'
    ) in error


def test_an_audio_codec_the_container_cannot_hold(run_dir, clip, tmp_path, capsys):
    error = bad_input_error(
        run_dir, clip[0], tmp_path / 'out.webm', capsys, '--codec', 'libvpx-vp9'
    )
    assert (
        f'--input {clip[0]}: its audio stream #1 (aac) cannot be copied into a webm container'
    ) in error


@pytest.mark.parametrize(
    'extra, message',
    [
        (['--codec', 'nonesuch'], '--codec nonesuch: not an encoder of this FFmpeg'),
        (['--codec', 'aac'], '--codec aac: a audio codec, expected a video codec'),
        (['--codec', 'ffv1', '--crf', '0'], '--codec ffv1 has no crf'),
        (['--codec', 'ffv1', '--fps', '10'], '--fps applies to PNG frames; the video '),
    ],
)
def test_bad_codec_flags(run_dir, clip, tmp_path, capsys, extra, message):
    assert message in bad_input_error(run_dir, clip[0], tmp_path / 'out.mkv', capsys, *extra)


def test_png_output_takes_no_video_flags(run_dir, clip, tmp_path, capsys):
    error = bad_input_error(run_dir, clip[0], tmp_path / 'frames', capsys, '--fps', '10')
    assert '--codec, --crf and --fps apply to a video file output' in error


# --- --checkpoint RUN_DIR alone ---------------------------------------------------------


def test_run_config_from_the_checkpoint(run_dir, tmp_path):
    assert load_run_config(None, run_dir)['model']['num_feat'] == 8
    assert load_run_config(None, os.path.join(run_dir, 'model'))['model']['num_frame'] == 3
    with pytest.raises(
        ConfigError,
        match=rf'--config not given and --checkpoint {tmp_path} '
        rf'has no {tmp_path}/config.yaml .* pass --config',
    ):
        load_run_config(None, str(tmp_path))


def test_freeze_and_infer_need_only_the_run_dir(run_dir, clip, tmp_path, capsys):
    assert (
        freeze.main(
            [
                '--checkpoint',
                run_dir,
                '--output',
                str(tmp_path / 'frozen'),
                '--height',
                '32',
                '--width',
                '48',
            ]
        )
        == 0
    )
    assert os.path.isfile(tmp_path / 'frozen' / 'edvr_frozen.pb')
    (tmp_path / 'bare').mkdir()
    code, err = run(str(tmp_path / 'bare'), clip[0], tmp_path / 'out.mp4', capsys)
    assert code == cli.EXIT_USAGE and 'pass --config' in err
