"""Fixtures for the model tests: BasicSR 1.4.2's EDVR as the parity oracle."""

import importlib.util
import os

import pytest

from tests.model import basicsr_oracle


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
    try:
        return basicsr_oracle.download_source(cache_dir)
    except RuntimeError as error:
        pytest.skip(str(error))
