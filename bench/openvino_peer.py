"""OpenVINO as a peer in the benchmarks: BasicSR's EDVR (the architecture of the parity tests,
tests/model/basicsr_oracle.py) on our weights (edvr.convert.to_basicsr), converted with
``openvino.convert_model`` (deformable convolution through torchvision's ``deform_conv2d``)
and compiled for CPU with ``INFERENCE_PRECISION_HINT`` f32 and bf16.

The peer lives in a process of its own, because torchvision crashes in a process that has
loaded TensorFlow. ``OpenVinoPeer`` (imported beside TensorFlow) starts it as
``python -m bench.openvino_peer`` and drives it with one JSON line per request on stdin;
replies come back one JSON line each on the child's original stdout, everything else the
libraries print goes to stderr. Timed there: one ``infer`` of the compiled model on a
(1, t, c, h, w) window already in memory (our ``InferFrame`` times ``Restorer(window)``: NumPy
in, NumPy out, the same work).

Optional: needs openvino, torch and torchvision (``pip install -r requirements-torch.txt``)
and BasicSR 1.4.2's sdist (fetched once with pip, as the parity tests do).
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ('f32', 'bf16')  # OpenVINO's INFERENCE_PRECISION_HINT values


def missing_requirement():
    """Why the peer cannot run here (a sentence), or None when openvino, torch and torchvision
    are installed. Checked without importing them (this process may hold TensorFlow)."""
    missing = [
        m for m in ('openvino', 'torch', 'torchvision') if importlib.util.find_spec(m) is None
    ]
    if missing:
        return (
            f'the OpenVINO peer needs {", ".join(missing)}: pip install -r requirements-torch.txt'
        )
    return None


def basicsr_cache_dir():
    """Where BasicSR's sdist is kept: ``$EDVR_TEST_CACHE/basicsr``, else the folder the parity
    tests' pytest cache uses in this clone."""
    if os.environ.get('EDVR_TEST_CACHE'):
        return os.path.join(os.environ['EDVR_TEST_CACHE'], 'basicsr')
    return os.path.join(REPO, '.pytest_cache', 'd', 'basicsr')


def basicsr_kwargs(model_cfg):
    """BasicSR ``EDVR(**kwargs)`` for our ``model`` config; ValueError if BasicSR cannot
    express it (it hard-codes a 64-wide upsampling tail)."""
    if model_cfg['num_upsample_feat'] != 64:
        raise ValueError(
            f'BasicSR EDVR hard-codes num_upsample_feat 64, the config has '
            f'{model_cfg["num_upsample_feat"]}'
        )
    from tests.model.basicsr_oracle import BASICSR_ARGS

    return {k: model_cfg[k] for k in BASICSR_ARGS}


class PeerError(RuntimeError):
    """The peer process failed; the message carries its traceback."""


class OpenVinoPeer:
    """The peer process for one model and window size.

    model_cfg: our ``model`` section; tf_values: {TF variable name: float32 array} (every
    variable of ``build_edvr(model_cfg)``); window: (t, h, w, c) float32, the frames every
    ``run`` restores; threads: OpenVINO's INFERENCE_NUM_THREADS (None: its default);
    precisions: the INFERENCE_PRECISION_HINT values to compile for.
    Attributes: ``version`` (openvino's), ``setup_seconds`` ({'import', 'convert', 'compile'}:
    the peer's set-up, seconds).
    """

    def __init__(
        self,
        model_cfg,
        tf_values,
        window,
        threads=None,
        precisions=PRECISIONS,
        basicsr_source=None,
        timeout=900,
    ):
        from edvr.convert import to_basicsr

        self.timeout = timeout
        self._folder = tempfile.TemporaryDirectory(prefix='openvino_peer_')
        weights = os.path.join(self._folder.name, 'weights.npz')
        np.savez(weights, **to_basicsr(tf_values, model_cfg))
        frames = os.path.join(self._folder.name, 'window.npz')
        np.savez(frames, window=np.asarray(window, np.float32))
        self._process = subprocess.Popen(
            [sys.executable, '-m', 'bench.openvino_peer'],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            reply = self._request(
                cmd='load',
                config=basicsr_kwargs(model_cfg),
                weights=weights,
                frames=frames,
                threads=threads,
                precisions=list(precisions),
                basicsr_source=basicsr_source,
                basicsr_cache=basicsr_cache_dir(),
            )
        except BaseException:
            self.close()
            raise
        self.version = reply['openvino']
        self.setup_seconds = reply['setup_seconds']

    def _request(self, **request):
        self._process.stdin.write(json.dumps(request) + '\n')
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=self.timeout)
            raise PeerError(
                f'the OpenVINO peer exited (code {code}) on {request["cmd"]!r}; its stderr is above'
            )
        reply = json.loads(line)
        if not reply.get('ok'):
            raise PeerError(f'the OpenVINO peer failed on {request["cmd"]!r}:\n{reply["error"]}')
        return reply

    def run(self, precision):
        """Restores the window once with the model compiled for ``precision``; returns the
        seconds of that inference, timed in the peer."""
        return self._request(cmd='run', precision=precision)['seconds']

    def output(self, precision):
        """The restored centre frame (4h, 4w, c) float32 of the model compiled for ``precision``."""
        path = os.path.join(self._folder.name, f'output_{precision}.npy')
        self._request(cmd='run', precision=precision, output=path)
        return np.load(path)

    def close(self):
        if self._process.poll() is None:
            try:
                self._process.stdin.write(json.dumps({'cmd': 'quit'}) + '\n')
                self._process.stdin.close()
                self._process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._process.stdout.close()
        self._folder.cleanup()


# --- the peer process ----------------------------------------------------------------------


class _Peer:
    """In the child: BasicSR's EDVR converted and compiled, and the window (1, t, c, h, w)."""

    def __init__(self):
        self.started = time.perf_counter()

    def load(self, config, weights, frames, threads, precisions, basicsr_source, basicsr_cache):
        import openvino as ov
        import torch

        from tests.model import basicsr_oracle

        setup = {'import': time.perf_counter() - self.started}
        start = time.perf_counter()
        source = basicsr_source or basicsr_oracle.download_source(basicsr_cache)
        net = basicsr_oracle.load_edvr_arch(source).EDVR(**config)
        with np.load(weights) as state:
            net.load_state_dict({k: torch.from_numpy(state[k]) for k in state.files})
        net.eval()
        with np.load(frames) as data:
            window = data['window']
        self.window = np.ascontiguousarray(window.transpose(0, 3, 1, 2)[None])  # (1, t, c, h, w)
        with torch.no_grad():
            model = ov.convert_model(net, example_input=torch.from_numpy(self.window))
        setup['convert'] = time.perf_counter() - start
        start = time.perf_counter()
        core = ov.Core()
        self.compiled = {}
        for precision in precisions:
            properties = {'INFERENCE_PRECISION_HINT': precision, 'PERFORMANCE_HINT': 'LATENCY'}
            if threads:
                properties['INFERENCE_NUM_THREADS'] = int(threads)
            self.compiled[precision] = core.compile_model(model, 'CPU', properties)
        setup['compile'] = time.perf_counter() - start
        return {'openvino': ov.get_version(), 'setup_seconds': setup}

    def run(self, precision, output=None):
        if precision not in self.compiled:
            raise ValueError(
                f'precision must be one of {sorted(self.compiled)} (compiled at '
                f'load), got {precision!r}'
            )
        compiled = self.compiled[precision]
        start = time.perf_counter()
        result = compiled(self.window)[0]
        seconds = time.perf_counter() - start
        if output:
            np.save(output, np.asarray(result)[0].transpose(1, 2, 0).astype(np.float32))
        return {'seconds': seconds}


def serve(requests, replies):
    """Answers JSON requests (one a line) until 'quit' or the end of ``requests``."""
    peer = _Peer()
    for line in requests:
        request = json.loads(line)
        command = request.pop('cmd')
        if command == 'quit':
            return
        try:
            reply = dict(getattr(peer, command)(**request), ok=True)
        except Exception:  # reported to the host, which raises it as PeerError
            reply = {'ok': False, 'error': traceback.format_exc()}
        replies.write(json.dumps(reply) + '\n')
        replies.flush()


def main():
    # Replies go on the original stdout; whatever the libraries print goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, replies)


if __name__ == '__main__':
    main()
