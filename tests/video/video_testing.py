"""Helpers for the video tests: small clips made with PyAV from the synthetic frames."""

import fractions

import av
import numpy as np

from edvr.data import synthetic


def synthetic_frames(count, height=32, width=48, seed=0):
    """``count`` LR frames (count, height, width, 3) uint8 of a synthetic clip: a camera
    panning over a photograph, rendered at 4x and downscaled as edvr.data.synthetic does."""
    options = synthetic.SyntheticOptions(
        gt_height=4 * height, gt_width=4 * width, object_probability=1.0
    )
    photo = synthetic.prepare_source(
        synthetic.load_photo('astronaut'), options.gt_height, options.gt_width
    )
    gt = synthetic.render_clip(np.random.RandomState(seed), photo, [photo], options, count)
    return np.stack([synthetic.bicubic_downscale(frame) for frame in gt])


def write_video(
    path,
    frames,
    rate=25,
    codec='libx264',
    pix_fmt='yuv420p',
    options=None,
    audio_codec='aac',
    audio_seconds=None,
    sample_rate=16000,
    pts=None,
    time_base=None,
):
    """Encode uint8 ``frames`` (t, h, w, 3) into ``path`` with PyAV.

    ``codec`` None: no video stream. ``pts``: the frames' timestamps in ``time_base``
    (default: 0, 1, 2, ... at ``rate``);
    ``audio_codec``: a 440 Hz sine of ``audio_seconds`` (default: the video's duration), or
    None for no audio. Returns the audio duration in seconds (or None).
    """
    rate = fractions.Fraction(rate)
    time_base = time_base or 1 / rate
    with av.open(str(path), 'w') as container:
        if codec is not None:
            stream = container.add_stream(codec, rate=rate)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = pix_fmt
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if options:
                stream.options = options
        audio = None
        if audio_codec is not None:
            audio = container.add_stream(audio_codec, rate=sample_rate)
            audio.layout = 'mono'
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format='rgb24')
            frame.pts = i if pts is None else pts[i]
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        if codec is not None:
            container.mux(stream.encode(None))
        if audio is None:
            return None
        seconds = audio_seconds if audio_seconds is not None else len(frames) / rate
        samples = int(round(seconds * sample_rate))
        t = np.arange(samples) / sample_rate
        wave = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        chunk = 1024
        for start in range(0, samples, chunk):
            block = wave[None, start : start + chunk]
            frame = av.AudioFrame.from_ndarray(block, format='s16', layout='mono')
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, sample_rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return samples / sample_rate


def probe(path):
    """What a test checks of a video file: frames (t, h, w, 3) uint8, pts, time base, rate,
    and each audio stream's codec name and duration in seconds (sum of its packets)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio_streams = list(container.streams.audio)
        frames, pts = [], []
        audio = {s.index: [s.codec_context.name, 0] for s in audio_streams}
        for packet in container.demux():
            if packet.stream.type == 'audio':
                if packet.duration:
                    audio[packet.stream.index][1] += packet.duration * packet.time_base
                continue
            if packet.stream.type == 'video':
                for frame in packet.decode():
                    frames.append(frame.to_ndarray(format='rgb24'))
                    pts.append(frame.pts)
        return dict(
            frames=np.stack(frames) if frames else np.zeros((0,)),
            pts=pts,
            time_base=video.time_base,
            rate=video.average_rate,
            codec=video.codec_context.name,
            audio=[(name, float(seconds)) for name, seconds in audio.values()],
        )
