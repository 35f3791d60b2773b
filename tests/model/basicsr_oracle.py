"""Run BasicSR 1.4.2's EDVR in a process of its own (the parity oracle).

    python basicsr_oracle.py SOURCE_DIR REQUEST.npz RESULT.npz [REQUEST.npz RESULT.npz ...]

SOURCE_DIR is the ``basicsr`` folder of the sdist. REQUEST holds ``config`` (JSON of
``EDVR`` keyword arguments), ``frames`` (b, t, h, w, c), ``seed``, ``offset_weight_std``, ``residual_gain`` and
optionally ``pth_path``, where the weights are saved as BasicSR saves them. RESULT gets
``output`` (b, h', w', c), the intermediate ``aligned`` (b, t, h, w, f) and ``fused``
(b, h, w, f) features, and every state-dict tensor under its BasicSR name.

torchvision must not be imported into a process that already loaded TensorFlow (it
crashes there), hence the separate process. basicsr's package ``__init__`` (which imports
its whole training stack) is replaced by stubs; ``basicsr.ops.dcn`` is loaded without its
compiled extension, so ``DCNv2Pack`` takes BasicSR's torchvision path.
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tarfile
import types

import numpy as np


BASICSR_VERSION = '1.4.2'
# BasicSR's EDVR keyword arguments, taken from our model config (same names).
BASICSR_ARGS = (
    'num_in_ch',
    'num_out_ch',
    'num_feat',
    'num_frame',
    'deformable_groups',
    'num_extract_block',
    'num_reconstruct_block',
    'center_frame_idx',
    'hr_in',
    'with_predeblur',
    'with_tsa',
)


def download_source(cache_dir):
    """The sdist's ``basicsr`` source folder under ``cache_dir`` (fetched once with pip);
    RuntimeError when pip cannot fetch it. Also used by the OpenVINO peer (bench/openvino_peer.py)."""
    source = os.path.join(cache_dir, f'basicsr-{BASICSR_VERSION}', 'basicsr')
    if os.path.isfile(os.path.join(source, 'archs', 'edvr_arch.py')):
        return source
    os.makedirs(cache_dir, exist_ok=True)
    archive = os.path.join(cache_dir, f'basicsr-{BASICSR_VERSION}.tar.gz')
    if not os.path.isfile(archive):
        # --no-build-isolation: pip only reads the sdist's metadata, it builds nothing.
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'pip',
                'download',
                f'basicsr=={BASICSR_VERSION}',
                '--no-deps',
                '--no-binary',
                ':all:',
                '--no-build-isolation',
                '-d',
                cache_dir,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0 or not os.path.isfile(archive):
            raise RuntimeError(
                f'cannot download basicsr=={BASICSR_VERSION} with pip: '
                f'{(result.stderr.strip().splitlines() or ["no output"])[-1]}'
            )
    prefix = f'basicsr-{BASICSR_VERSION}/basicsr/'
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(cache_dir, members=members, filter='data')
    return source


def _package(name, path=None):
    module = types.ModuleType(name)
    module.__path__ = [path] if path else []
    sys.modules[name] = module
    return module


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_edvr_arch(source):
    _package('basicsr')
    utils = _package('basicsr.utils')
    utils.get_root_logger = lambda *args, **kwargs: logging.getLogger('basicsr')
    registry = types.ModuleType('basicsr.utils.registry')
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: lambda cls: cls)
    sys.modules['basicsr.utils.registry'] = registry
    _package('basicsr.ops', os.path.join(source, 'ops'))
    dcn = _package('basicsr.ops.dcn', os.path.join(source, 'ops', 'dcn'))
    deform_conv = _load_module(
        'basicsr.ops.dcn.deform_conv', os.path.join(source, 'ops', 'dcn', 'deform_conv.py')
    )
    if hasattr(deform_conv, 'deform_conv_ext'):
        raise RuntimeError('expected BasicSR without its compiled DCN extension')
    dcn.ModulatedDeformConvPack = deform_conv.ModulatedDeformConvPack
    dcn.modulated_deform_conv = deform_conv.modulated_deform_conv
    _package('basicsr.archs', os.path.join(source, 'archs'))
    _load_module('basicsr.archs.arch_util', os.path.join(source, 'archs', 'arch_util.py'))
    return _load_module('basicsr.archs.edvr_arch', os.path.join(source, 'archs', 'edvr_arch.py'))


def run(edvr_arch, request_path, result_path):
    import torch

    request = np.load(request_path)
    config = json.loads(str(request['config']))
    torch.manual_seed(int(request['seed']))
    net = edvr_arch.EDVR(**config)  # BasicSR's own initialisation
    # BasicSR zero-initialises the offset convs, which would leave every DCN a plain conv and
    # the offset layout untested: give them weights that make offsets of a few pixels.
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.endswith('conv_offset'):
                module.weight.normal_(0.0, float(request['offset_weight_std']))
                module.bias.uniform_(-2.0, 2.0)
        # BasicSR's init leaves the residual tiny (~1e-3); a trained network's is ~0.1. Scale
        # the last conv so that errors anywhere upstream show at their realistic size.
        net.conv_last.weight.mul_(float(request['residual_gain']))
    net.eval()
    captured = {'aligned': []}
    net.pcd_align.register_forward_hook(lambda m, i, out: captured['aligned'].append(out))
    net.fusion.register_forward_hook(lambda m, i, out: captured.__setitem__('fused', out))
    frames = torch.from_numpy(np.ascontiguousarray(request['frames'].transpose(0, 1, 4, 2, 3)))
    with torch.no_grad():
        output = net(frames).numpy().transpose(0, 2, 3, 1)
    aligned = torch.stack(captured['aligned'], dim=1).numpy().transpose(0, 1, 3, 4, 2)
    fused = captured['fused'].numpy().transpose(0, 2, 3, 1)
    if 'pth_path' in request.files:  # also save the weights the way BasicSR does
        torch.save({'params': net.state_dict()}, str(request['pth_path']))
    tensors = {k: v.numpy() for k, v in net.state_dict().items()}
    np.savez(
        result_path,
        output=output,
        aligned=aligned,
        fused=fused,
        **{f'param:{k}': v for k, v in tensors.items()},
    )


def main(source, *paths):
    edvr_arch = load_edvr_arch(source)
    for request_path, result_path in zip(paths[::2], paths[1::2]):
        run(edvr_arch, request_path, result_path)


if __name__ == '__main__':
    main(*sys.argv[1:])
