"""Clips in and out for edvr.infer: folders of PNG frames or video files (PyAV), streamed.

- ``open_source(path)``: a folder of PNG frames (sorted by name) or a video file; iterating
  it yields ``Frame``s in order. A video is demuxed and decoded on a thread that feeds a
  bounded queue, so memory does not grow with the clip's length.
- ``open_sink(path, source, ...)``: a folder of PNGs, or a video file when ``path`` has an
  extension (container from the extension, H.264 by default). Everything is written under a
  temporary name in the same folder and renamed at the end (``commit``); ``abort`` (on any
  error or Ctrl-C) removes it, so no partial output ever appears under the final name.
- ``sliding_windows(frames, num_frame, padding, check_length)``: the model window of each
  frame, holding only the frames later windows still need.

A video keeps its frame rate, time base and every frame's timestamp (variable frame rate
survives), and its audio streams are copied packet by packet (no re-encoding).
"""

import collections
import os
import queue
import shutil
import threading

import numpy as np
from PIL import Image

IMAGE_MODES = ('RGB', 'RGBA', 'L', 'LA', 'P')
DEFAULT_CODEC = 'libx264'
# Lossless codecs that can store RGB: written in RGB so that nothing is lost to chroma
# subsampling; every other codec gets yuv420p (what players expect) when it supports it.
LOSSLESS_RGB_CODECS = ('ffv1', 'png', 'ffvhuff', 'huffyuv', 'utvideo', 'libx264rgb', 'qtrle')
RGB_FORMATS = ('rgb24', 'bgr0', 'gbrp')
CRF_CODECS = ('libx264', 'libx264rgb', 'libx265', 'libvpx', 'libvpx-vp9', 'libaom-av1', 'libsvtav1')
QUEUE_FRAMES = 8  # decoded frames the decoding thread may run ahead of the model

Frame = collections.namedtuple('Frame', 'index name pixels pts')
Frame.__doc__ = """One input frame: ``pixels`` (h, w, 3) float32 in [0, 1]; ``name`` the PNG name it
is written under; ``pts`` its timestamp in the source's time base (None for PNG folders)."""


class VideoError(ValueError):
    """A clip that cannot be read or written: names the file, what it got and what it expected."""


# --- PNG frames ---------------------------------------------------------------------------


def list_frames(input_dir):
    """Sorted paths of the PNG frames in ``input_dir``; errors on other files or none."""
    if not os.path.isdir(input_dir):
        raise VideoError(f'--input {input_dir}: not a directory')
    names = sorted(
        n
        for n in os.listdir(input_dir)
        if not n.startswith('.') and os.path.isfile(os.path.join(input_dir, n))
    )
    others = [n for n in names if not n.lower().endswith('.png')]
    if others:
        raise VideoError(
            f'--input {input_dir}: expected only PNG frames, found other files: '
            f'{", ".join(others[:5])}{" ..." if len(others) > 5 else ""}'
        )
    if not names:
        raise VideoError(f'--input {input_dir}: no PNG frames found (the folder is empty)')
    return [os.path.join(input_dir, n) for n in names]


def _open_png(path):
    image = Image.open(path)
    if image.format != 'PNG' or image.mode not in IMAGE_MODES:
        image.close()
        raise VideoError(
            f'{path}: expected an 8-bit PNG ({"/".join(IMAGE_MODES)}), '
            f'got {image.format} in mode {image.mode}'
        )
    return image


def read_frame(path):
    """An 8-bit PNG as float32 (h, w, 3) in [0, 1]."""
    try:
        with _open_png(path) as image:
            rgb = np.asarray(image.convert('RGB'), dtype=np.float32) / 255.0
    except (OSError, SyntaxError) as e:
        raise VideoError(f'{path}: cannot read as PNG: {e}') from None
    return rgb


def to_uint8(frame):
    """Float (h, w, 3) in [0, 1] -> uint8 (clipped, rounded)."""
    return np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)


def write_frame(path, frame):
    """Float (h, w, 3) in [0, 1] -> 8-bit PNG (clipped, rounded)."""
    Image.fromarray(to_uint8(frame)).save(path)


class PngSource:
    """The PNG frames of a folder, sorted by name. Every header is checked when opened (format,
    mode, one size for all), so a bad frame is an error before anything is restored."""

    rate = time_base = None
    audio = ()

    def __init__(self, folder):
        self.path = folder
        self.paths = list_frames(folder)
        self.count = len(self.paths)
        size = None
        for path in self.paths:
            try:
                with _open_png(path) as image:
                    width, height = image.size
            except (OSError, SyntaxError) as e:
                raise VideoError(f'{path}: cannot read as PNG: {e}') from None
            if size is None:
                size = (height, width)
            elif (height, width) != size:
                raise VideoError(
                    f'{path}: frame size {width}x{height} differs from '
                    f'{os.path.basename(self.paths[0])} ({size[1]}x{size[0]}); '
                    f'all frames of a clip must have one size'
                )
        self.size = size  # (h, w)

    def __iter__(self):
        for index, path in enumerate(self.paths):
            yield Frame(index, os.path.basename(path), read_frame(path), None)

    def close(self):
        pass


# --- video files --------------------------------------------------------------------------


def _ffmpeg_errors():
    import av

    return (av.FFmpegError, ValueError, OSError)  # av.FFmpegError subclasses OSError/ValueError


class VideoSource:
    """The first video stream of a file PyAV reads, decoded on a thread into a bounded queue.

    ``size`` (h, w), ``rate`` (average frame rate, Fraction), ``time_base`` (Fraction),
    ``count`` (frames the container declares, or None), ``audio`` (the audio streams).
    Packets of the audio streams are handed to ``on_audio_packet`` (set by the sink) in the
    thread that iterates, in demuxing order.
    """

    def __init__(self, path):
        import av

        self.path = path
        if not os.path.isfile(path):
            raise VideoError(f'--input {path}: no such file or folder')
        try:
            self.container = av.open(path)
        except _ffmpeg_errors() as e:
            raise VideoError(f'--input {path}: not a video file FFmpeg can read ({e})') from None
        if not self.container.streams.video:
            kinds = ', '.join(s.type for s in self.container.streams) or 'none'
            self.container.close()
            raise VideoError(f'--input {path}: holds no video stream (streams: {kinds})')
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = 'AUTO'
        self.audio = list(self.container.streams.audio)
        self.rate = self.stream.average_rate or self.stream.guessed_rate
        self.time_base = self.stream.time_base
        self.size = (self.stream.codec_context.height, self.stream.codec_context.width)
        self.count = self.stream.frames or None
        self.on_audio_packet = None
        self._stop = threading.Event()
        self._thread = None

    def __iter__(self):
        items = queue.Queue(maxsize=QUEUE_FRAMES)
        end = object()
        self._thread = threading.Thread(
            target=self._decode, args=(items, end), daemon=True, name='edvr-video-decode'
        )
        self._thread.start()
        while True:
            item = items.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Frame):
                yield item
            elif self.on_audio_packet is not None:  # a packet of an audio stream
                self.on_audio_packet(item)

    def _put(self, items, item):
        while not self._stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self, items, end):
        """Demux and decode (on the thread); frames, audio packets, an error, then ``end``."""
        index = 0
        try:
            for packet in self.container.demux([self.stream] + self.audio):
                if packet.stream.type == 'audio':
                    if packet.dts is not None and not self._put(items, packet):
                        return
                    continue
                for decoded in packet.decode():
                    if (decoded.height, decoded.width) != self.size:
                        raise VideoError(
                            f'--input {self.path}: frame {index} is '
                            f'{decoded.width}x{decoded.height}, '
                            f'the stream started at {self.size[1]}x{self.size[0]}; frame sizes '
                            f'that change mid-stream are not supported'
                        )
                    pts = decoded.pts
                    if pts is None:  # e.g. raw streams: the frame's place at the average rate
                        pts = int(round(index / (self.rate * self.time_base)))
                    pixels = decoded.to_ndarray(format='rgb24').astype(np.float32) / 255.0
                    if not self._put(items, Frame(index, f'{index:08d}.png', pixels, pts)):
                        return
                    index += 1
            if index == 0:
                raise VideoError(f'--input {self.path}: the video stream has no frames')
        except VideoError as e:
            self._put(items, e)
        except _ffmpeg_errors() as e:
            self._put(items, VideoError(f'--input {self.path}: cannot decode frame {index}: {e}'))
        except BaseException as e:  # handed to the iterating thread, which re-raises it
            self._put(items, e)
        finally:
            self._put(items, end)

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.container.close()


def open_source(path):
    """A ``PngSource`` for a folder, a ``VideoSource`` for a file."""
    if os.path.isdir(path):
        return PngSource(path)
    return VideoSource(path)


# --- output -------------------------------------------------------------------------------


def is_video_path(path):
    """An output path names a video file when it has an extension and is not a folder."""
    return not os.path.isdir(path) and bool(os.path.splitext(path)[1])


def _temporary_name(path):
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f'.{stem}.partial-{os.getpid()}{ext}')


class PngSink:
    """PNG frames into a folder: written into a hidden temporary folder beside it, moved in
    by ``commit``; frames keep the input's names (``%08d.png`` from a video)."""

    def __init__(self, folder):
        self.path = folder
        parent = os.path.dirname(os.path.abspath(folder))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise VideoError(f'--output {folder}: exists and is not a folder')
        if not os.path.isdir(parent):
            raise VideoError(f'--output {folder}: the folder {parent} does not exist')
        self.temp = _temporary_name(folder)
        os.makedirs(self.temp)
        self.names = []

    def write(self, frame, restored):
        write_frame(os.path.join(self.temp, frame.name), restored)
        self.names.append(frame.name)

    def commit(self):
        os.makedirs(self.path, exist_ok=True)
        for name in self.names:
            os.replace(os.path.join(self.temp, name), os.path.join(self.path, name))
        os.rmdir(self.temp)
        return [os.path.join(self.path, n) for n in self.names]

    def abort(self):
        shutil.rmtree(self.temp, ignore_errors=True)


def _pixel_format(codec):
    formats = [f.name for f in (codec.video_formats or ())]
    if codec.name in LOSSLESS_RGB_CODECS:
        rgb = [f for f in RGB_FORMATS if f in formats]
        if rgb:
            return rgb[0]
    if 'yuv420p' in formats or not formats:
        return 'yuv420p'
    return formats[0]


class VideoSink:
    """A video file: ``codec`` (default libx264) at the source's rate, time base and frame
    timestamps, its audio streams copied; the container is chosen by the extension.

    Everything that can be checked before the first frame is: the container, the codec and
    that the container can hold each audio stream's codec (else VideoError, nothing written).
    """

    def __init__(self, path, source, size, codec=None, crf=None, fps=None):
        import av

        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise VideoError(f'--output {path}: the folder {folder} does not exist')
        codec_name = codec or DEFAULT_CODEC
        try:
            encoder = av.codec.Codec(codec_name, 'w')
        except _ffmpeg_errors() as e:
            raise VideoError(f'--codec {codec_name}: not an encoder of this FFmpeg ({e})') from None
        if encoder.type != 'video':
            raise VideoError(
                f'--codec {codec_name}: a {encoder.type} codec, expected a video codec'
            )
        if crf is not None and codec_name not in CRF_CODECS:
            raise VideoError(
                f'--crf applies to {", ".join(CRF_CODECS)}; --codec {codec_name} has no crf'
            )
        if source.rate is None:
            if fps is None:
                raise VideoError(f'--output {path}: a video from PNG frames needs --fps')
            rate = _fraction(fps)
            time_base = 1 / rate
            self._pts = lambda frame: frame.index
        else:
            if fps is not None:
                raise VideoError(
                    f'--fps applies to PNG frames; the video {source.path} keeps '
                    f'its own rate and timestamps'
                )
            rate, time_base = source.rate, source.time_base
            self._pts = lambda frame: frame.pts
        self.temp = _temporary_name(path)
        try:
            self.container = av.open(self.temp, 'w')
        except _ffmpeg_errors() as e:
            raise VideoError(
                f'--output {path}: FFmpeg has no container for the extension '
                f'{os.path.splitext(path)[1]!r} ({e})'
            ) from None
        try:
            supported = self.container.supported_codecs
            if encoder.name not in supported and codec_name not in supported:
                raise VideoError(
                    f'--output {path}: a {self.container.format.name} container '
                    f'cannot hold {codec_name} video; choose another --codec or '
                    f'container'
                )
            self.stream = self.container.add_stream(codec_name, rate=rate)
            self.stream.height, self.stream.width = size
            self.stream.pix_fmt = _pixel_format(encoder)
            self.stream.time_base = time_base
            self.stream.codec_context.time_base = time_base
            if crf is not None:
                self.stream.options = {'crf': str(crf)}
            self.time_base = time_base
            self.audio = {}
            for stream in source.audio:
                name = stream.codec_context.name
                if name not in supported:
                    raise VideoError(
                        f'--input {source.path}: its audio stream #{stream.index} ({name}) cannot '
                        f'be copied into a {self.container.format.name} container ({path}); '
                        f'choose a container that holds {name} (e.g. .mkv)'
                    )
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
        except BaseException:
            self.abort()
            raise
        source.on_audio_packet = self.copy_packet

    def write(self, frame, restored):
        import av

        out = av.VideoFrame.from_ndarray(to_uint8(restored), format='rgb24')
        out.pts = self._pts(frame)
        out.time_base = self.time_base
        try:
            for packet in self.stream.encode(out):
                self.container.mux(packet)
        except _ffmpeg_errors() as e:
            raise VideoError(
                f'--output {self.path}: encoding frame {frame.index} with '
                f'{self.stream.codec_context.name} at time base {self.time_base} '
                f'failed: {e}'
            ) from None

    def copy_packet(self, packet):
        """An input audio packet, muxed unchanged into its copied stream."""
        packet.stream = self.audio[packet.stream.index]
        try:
            self.container.mux(packet)
        except _ffmpeg_errors() as e:
            raise VideoError(f'--output {self.path}: copying an audio packet failed: {e}') from None

    def commit(self):
        try:
            for packet in self.stream.encode(None):  # flush the encoder's delayed frames
                self.container.mux(packet)
            self.container.close()
        except _ffmpeg_errors() as e:
            raise VideoError(f'--output {self.path}: finishing the video failed: {e}') from None
        os.replace(self.temp, self.path)
        return [self.path]

    def abort(self):
        try:
            self.container.close()
        except Exception:  # a half-written container may not close cleanly; it is deleted
            pass
        if os.path.exists(self.temp):
            os.remove(self.temp)


def _fraction(fps):
    import fractions

    if fps <= 0:
        raise VideoError(f'--fps must be positive, got {fps}')
    return fractions.Fraction(fps).limit_denominator(1001000)


def open_sink(path, source, size, codec=None, crf=None, fps=None):
    """A ``VideoSink`` when ``path`` names a video file, else a ``PngSink``. ``size``: the
    restored frames' (h, w)."""
    if is_video_path(path):
        return VideoSink(path, source, size, codec, crf, fps)
    if codec is not None or crf is not None or fps is not None:
        raise VideoError(
            f'--output {path}: a folder of PNGs; --codec, --crf and --fps apply '
            f'to a video file output (give it an extension such as .mp4)'
        )
    return PngSink(path)


# --- the sliding window -------------------------------------------------------------------


def sliding_windows(frames, num_frame, padding, check_length):
    """Each frame's model window over a stream, holding only what later windows need.

    Yields (centre index, window indices, held) where ``held`` maps frame index -> frame
    for every index of the window. A window is formed once ``num_frame - 1`` frames past its
    centre are read (or the stream ended): at the start, ``reflection_circle`` reaches that
    far ahead; at the end, frames down to ``centre - (num_frame - 1)``, so at most
    ``2 * num_frame`` frames are held. ``check_length(n)`` is called with the clip's length
    when the stream ends (it raises for clips too short for ``padding``).
    """
    from edvr.data.frame_indices import window_indices

    held, read, ended = {}, 0, False
    frames = iter(frames)
    center = 0
    while True:
        while not ended and read < center + num_frame:
            try:
                held[read] = next(frames)
                read += 1
            except StopIteration:
                ended = True
                check_length(read)
        if center >= read:
            return
        # Until the stream ends, ``read`` frames is a lower bound of the length; the window
        # does not depend on it while ``read >= center + num_frame`` (no right-end padding).
        window = window_indices(center, read, num_frame, padding)
        yield center, window, held
        center += 1
        for index in [i for i in held if i < center - (num_frame - 1)]:
            del held[index]
