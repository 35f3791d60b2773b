"""Config loading: presets, defaults, and errors that name the bad key."""

import os

import pytest

from edvr import config as config_module
from edvr.config import ConfigError, load_config, parse_config

CONFIGS = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')
PRESETS = ('edvr', 'edvr_m', 'edvr_l', 'edvr_tiny')


@pytest.mark.parametrize('name', PRESETS)
def test_presets_load(name):
    cfg = load_config(os.path.join(CONFIGS, f'{name}.yaml'))
    assert set(cfg['model']) == set(config_module.SCHEMA['model'])


def test_preset_widths_match_spec():
    m = load_config(os.path.join(CONFIGS, 'edvr_m.yaml'))['model']
    assert (
        m['num_feat'],
        m['num_extract_block'],
        m['num_reconstruct_block'],
        m['deformable_groups'],
        m['num_frame'],
        m['with_tsa'],
    ) == (64, 5, 10, 8, 5, True)
    large = load_config(os.path.join(CONFIGS, 'edvr_l.yaml'))['model']
    assert (large['num_feat'], large['num_reconstruct_block']) == (128, 40)


def test_defaults_fill_missing_keys():
    cfg = parse_config({'model': {'num_feat': 32}})
    assert cfg['model']['num_feat'] == 32 and cfg['model']['deformable_groups'] == 8


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('model:\n  num_feats: 64\n')
    with pytest.raises(
        ConfigError,
        match=r"bad\.yaml: unknown key in section 'model': 'num_feats'; "
        r"did you mean 'num_feat'\?",
    ):
        load_config(path)


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"unknown section 'modle'; did you mean 'model'\?"):
        parse_config({'modle': {}})


@pytest.mark.parametrize(
    'key, value, expected',
    [
        ('num_feat', '64', 'int'),
        ('num_feat', True, 'int'),
        ('with_tsa', 1, 'bool'),
        ('center_frame_idx', 1.5, 'int or null'),
    ],
)
def test_wrong_type_is_named(key, value, expected):
    with pytest.raises(ConfigError, match=rf'model\.{key} must be {expected}, got {value!r}'):
        parse_config({'model': {key: value}})


@pytest.mark.parametrize(
    'overrides, message',
    [
        (
            {'num_feat': 60, 'deformable_groups': 8},
            r'deformable_groups must divide num_feat \(60\), got 8',
        ),
        ({'hr_in': True}, r'hr_in: true needs with_predeblur: true'),
        ({'center_frame_idx': 5}, r'center_frame_idx must be in \[0, num_frame=5\), got 5'),
        ({'num_out_ch': 1}, r'num_out_ch must equal num_in_ch \(3\)'),
    ],
)
def test_inconsistent_model_is_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({'model': overrides})


def test_presets_resolve_outside_a_clone(tmp_path, monkeypatch):
    """The README's `--config configs/edvr_tiny.yaml` (or a bare preset name) also works
    from another directory, as it must for an installed package; a file that exists wins."""
    expected = load_config(os.path.join(CONFIGS, 'edvr_tiny.yaml'))
    monkeypatch.chdir(tmp_path)
    for path in ('configs/edvr_tiny.yaml', 'edvr_tiny.yaml', 'edvr_tiny'):
        assert load_config(path) == expected, path
    # (OSError or ConfigError: how a missing file is reported is not this test's concern.)
    with pytest.raises((OSError, ConfigError), match='nope.yaml'):
        load_config('configs/nope.yaml')
    with pytest.raises((OSError, ConfigError), match='elsewhere'):
        load_config('elsewhere/edvr_tiny.yaml')  # only configs/ and bare names are presets
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'edvr_tiny.yaml').write_text('model:\n  num_feat: 8\n')
    assert load_config('configs/edvr_tiny.yaml')['model']['num_feat'] == 8
