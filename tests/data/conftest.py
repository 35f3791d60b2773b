"""Fixtures for the data tests."""

import pytest

from tests.data.coordinate_frames import write_mini_dataset


@pytest.fixture
def mini_dataset(tmp_path):
    """Two training clips (7 and 6 frames) and one validation clip (6 frames), LR 24x32."""
    return write_mini_dataset(tmp_path / 'data', {'train': {'000': 7, '001': 6}, 'val': {'002': 6}})
