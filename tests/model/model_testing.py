"""Helpers for the model tests: a checkpoint of random weights, the BasicSR oracle."""

import json
import os
import subprocess
import sys

import numpy as np

ORACLE = os.path.join(os.path.dirname(__file__), 'basicsr_oracle.py')


def random_checkpoint(cfg, path, seed=0, offset_scale=1.0):
    """Write a checkpoint of random values for ``cfg`` at ``path``; returns {name: array}.

    Conv weights and biases are U(-1, 1) / sqrt(fan_in); the DCN offset convs' biases are
    U(-offset_scale, offset_scale), so offsets (in pixels) are of that size.
    """
    from edvr.checkpoint import model_variable_shapes, write_weights

    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in sorted(model_variable_shapes(cfg).items()):
        fan_in = int(np.prod(shape[:-1])) if len(shape) == 4 else shape[0]
        if name.endswith('offset_mask_conv/bias'):
            values[name] = rng.uniform(-offset_scale, offset_scale, shape).astype(np.float32)
        else:
            values[name] = (rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32)
    write_weights(values, cfg, str(path))
    return values


def _write_request(
    path, edvr_kwargs, frames, seed=0, offset_weight_std=0.05, residual_gain=1.0, pth_path=None
):
    extra = {} if pth_path is None else {'pth_path': str(pth_path)}
    np.savez(
        path,
        config=json.dumps(edvr_kwargs),
        frames=frames,
        seed=seed,
        offset_weight_std=offset_weight_std,
        residual_gain=residual_gain,
        **extra,
    )


def _read_result(path):
    with np.load(path) as data:
        state_dict = {k[len('param:') :]: data[k] for k in data.files if k.startswith('param:')}
        return {k: data[k] for k in ('output', 'aligned', 'fused')}, state_dict


def run_oracle(source, folder, requests):
    """Run BasicSR on ``requests`` (a dict name -> keyword arguments of ``_write_request``) in
    one subprocess (torch loads once); returns name -> (arrays, state_dict).

    arrays: 'output', 'aligned' and 'fused' in NHWC order; state_dict: BasicSR names -> arrays.
    """
    paths = []
    for name, kwargs in requests.items():
        _write_request(os.path.join(folder, f'{name}.request.npz'), **kwargs)
        paths += [
            os.path.join(folder, f'{name}.request.npz'),
            os.path.join(folder, f'{name}.result.npz'),
        ]
    result = subprocess.run(
        [sys.executable, ORACLE, source, *paths], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f'BasicSR oracle failed:\n{result.stderr[-3000:]}'
    return {name: _read_result(os.path.join(folder, f'{name}.result.npz')) for name in requests}
