"""Fixtures for the model tests: BasicSR 1.4.2's EDVR as the parity oracle."""
import importlib.util
import os
import subprocess
import sys
import tarfile

import pytest

BASICSR_VERSION = '1.4.2'


def _download_basicsr(cache_dir):
    """The sdist's ``basicsr`` source folder under ``cache_dir`` (fetched once with pip)."""
    source = os.path.join(cache_dir, f'basicsr-{BASICSR_VERSION}', 'basicsr')
    if os.path.isfile(os.path.join(source, 'archs', 'edvr_arch.py')):
        return source
    archive = os.path.join(cache_dir, f'basicsr-{BASICSR_VERSION}.tar.gz')
    if not os.path.isfile(archive):
        # --no-build-isolation: pip only reads the sdist's metadata, it builds nothing.
        result = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', f'basicsr=={BASICSR_VERSION}', '--no-deps',
             '--no-binary', ':all:', '--no-build-isolation', '-d', cache_dir],
            capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not os.path.isfile(archive):
            pytest.skip(f'cannot download basicsr=={BASICSR_VERSION} with pip: '
                        f'{(result.stderr.strip().splitlines() or ["no output"])[-1]}')
    prefix = f'basicsr-{BASICSR_VERSION}/basicsr/'
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(cache_dir, members=members, filter='data')
    return source


@pytest.fixture(scope='session')
def basicsr_source(request, tmp_path_factory):
    """Path of BasicSR 1.4.2's ``basicsr`` source folder; skips without torch/torchvision.

    Cached in ``$EDVR_TEST_CACHE``, else pytest's cache folder, else a temporary folder.
    """
    for module in ('torch', 'torchvision'):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'parity tests need {module}: pip install -r requirements-torch.txt')
    cache = getattr(request.config, 'cache', None)
    if os.environ.get('EDVR_TEST_CACHE'):
        cache_dir = os.path.join(os.environ['EDVR_TEST_CACHE'], 'basicsr')
        os.makedirs(cache_dir, exist_ok=True)
    elif cache is not None:
        cache_dir = str(cache.mkdir('basicsr'))
    else:
        cache_dir = str(tmp_path_factory.mktemp('basicsr'))
    return _download_basicsr(cache_dir)
