"""Peak memory of ``edvr.infer`` streaming a video: it must not grow with the clip's length.

    python -m bench.video_memory [--frames 30 300] [--size 180x320]
        [--config configs/edvr_tiny.yaml] [--no_feature_cache] [--json FILE]

For each length, makes an H.264 + AAC clip of that many frames (a photograph panning, from
scikit-image), restores it to H.264 with ``python -m edvr.infer`` in a child process and
reads the child's peak resident memory (``ru_maxrss`` from ``os.wait4``, the whole process:
TensorFlow, the graph, the frames held). The model has random weights (its memory does not
depend on their values); by default EDVR-tiny, so that 300 frames take minutes, not the
25 of EDVR-M on 2 cores. Printed: peak MB and seconds per frame of each, and the spread of
the peaks ((max - min) / min), which the project wants under 10%.
"""

import argparse
import fractions
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_SPREAD = 0.10


def write_clip(path, frames, height, width, rate=25):
    """An H.264 (yuv420p) + AAC mp4 of ``frames`` frames: a camera panning over a photo."""
    import av
    from PIL import Image

    from edvr.data import synthetic

    photo = np.asarray(
        Image.fromarray(synthetic.load_photo('astronaut')).resize(
            (2 * width, 2 * height), Image.BICUBIC
        )
    )
    rate = fractions.Fraction(rate)
    with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=rate)
        stream.height, stream.width, stream.pix_fmt = height, width, 'yuv420p'
        audio = container.add_stream('aac', rate=16000)
        audio.layout = 'mono'
        for i in range(frames):
            phase = 2 * np.pi * i / 100
            y = int((0.5 + 0.5 * np.sin(phase)) * height)
            x = int((0.5 + 0.5 * np.cos(phase)) * width)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(photo[y : y + height, x : x + width]), format='rgb24'
            )
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        samples = int(16000 * frames / rate)
        wave = (3000 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.int16)
        for start in range(0, samples, 1024):
            block = av.AudioFrame.from_ndarray(
                wave[None, start : start + 1024], format='s16', layout='mono'
            )
            block.sample_rate, block.pts = 16000, start
            container.mux(audio.encode(block))
        container.mux(audio.encode(None))


def run_infer(args):
    """Runs ``python -m edvr.infer ARGS``; returns (peak RSS in bytes, seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, '-m', 'edvr.infer', *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(
            f'edvr.infer {" ".join(args)} failed ({child.returncode}):\n'
            f'{stderr.decode(errors="replace")[-3000:]}'
        )
    return usage.ru_maxrss * 1024, seconds  # ru_maxrss is in KiB on Linux


def measure(lengths, height, width, config_path, work_dir, extra=()):
    """Peak RSS and time of edvr.infer on clips of each length; returns the results dict."""
    from bench.workloads import write_random_checkpoint
    from edvr.config import load_config

    run_dir = os.path.join(work_dir, 'run')
    os.makedirs(run_dir, exist_ok=True)
    write_random_checkpoint(load_config(config_path)['model'], run_dir)
    runs = []
    for frames in lengths:
        clip = os.path.join(work_dir, f'clip_{frames}.mp4')
        write_clip(clip, frames, height, width)
        peak, seconds = run_infer(
            [
                '--config',
                config_path,
                '--checkpoint',
                run_dir,
                '--input',
                clip,
                '--output',
                os.path.join(work_dir, f'restored_{frames}.mp4'),
                *extra,
            ]
        )
        runs.append(
            {
                'frames': frames,
                'peak_rss_mb': peak / 2**20,
                'seconds': seconds,
                'seconds_per_frame': seconds / frames,
            }
        )
    peaks = [r['peak_rss_mb'] for r in runs]
    return {
        'frame': [height, width],
        'config': os.path.relpath(config_path, REPO),
        'runs': runs,
        'peak_spread': (max(peaks) - min(peaks)) / min(peaks),
        'target_spread': TARGET_SPREAD,
        'flags': list(extra),
    }


def format_results(results):
    flags = ''.join(' ' + flag for flag in results['flags'])
    lines = [
        f'edvr.infer{flags} peak memory, {results["frame"][0]}x{results["frame"][1]} '
        f'frames, {results["config"]} (random weights)'
    ]
    for r in results['runs']:
        lines.append(
            f'{r["frames"]:>6} frames: peak RSS {r["peak_rss_mb"]:8.1f} MB, '
            f'{r["seconds_per_frame"]:.3f} s/frame (whole process, start-up included)'
        )
    verdict = 'met' if results['peak_spread'] < results['target_spread'] else 'not met'
    lines.append(
        f'peak spread (max - min) / min: {100 * results["peak_spread"]:.1f}% '
        f'(target < {100 * results["target_spread"]:.0f}%: {verdict})'
    )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m bench.video_memory', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--frames', type=int, nargs='+', default=[30, 300])
    parser.add_argument('--size', default='180x320', help='frame HEIGHTxWIDTH')
    parser.add_argument('--config', default=os.path.join(REPO, 'configs', 'edvr_tiny.yaml'))
    parser.add_argument('--no_feature_cache', action='store_true')
    parser.add_argument('--json', help='write the results here as JSON')
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split('x'))
    extra = ['--no_feature_cache'] if args.no_feature_cache else []
    with tempfile.TemporaryDirectory(prefix='edvr-video-memory-') as work_dir:
        results = measure(args.frames, height, width, os.path.abspath(args.config), work_dir, extra)
    print('\n'.join(format_results(results)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
