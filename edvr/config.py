"""YAML configuration: sections of known keys with defaults, validated on load.

A config file is a mapping of sections; each section is a mapping of keys. Only the
sections of ``SCHEMA`` are allowed, and only their keys::

    model:
      num_feat: 64
      deformable_groups: 8

API:

- ``load_config(path)`` reads a YAML file (or a preset named as ``configs/edvr_tiny.yaml`` or
  ``edvr_tiny``, also when installed) and returns a dict of section dicts (every section
  of ``SCHEMA`` present and every key filled with its default when absent).
- ``parse_config(mapping, source='<dict>')`` does the same for an in-memory mapping.
- ``load_run_config(path, checkpoint)``: ``load_config(path)``, or without a path the
  ``config.yaml`` edvr.train wrote beside the checkpoint (``--checkpoint RUN_DIR`` alone).
- ``SCHEMA`` maps each section to its keys, each key to ``(default, type)`` where ``type``
  is a type or a tuple of types (``type(None)`` allows null).

An unknown section, an unknown key (with the closest known key suggested) or a value of
the wrong type raises ``ConfigError`` naming the file, the key, what it got and what it
expected. Model keys follow BasicSR 1.4.2's ``EDVR`` arguments so configs translate one to
one; ``num_upsample_feat`` is the width BasicSR hard-codes to 64 in its upsampling tail.
"""

import copy
import difflib
import os

import yaml


class ConfigError(ValueError):
    """A config file or mapping that does not match ``SCHEMA``."""


_INT = int
_OPTIONAL_INT = (int, type(None))

SCHEMA = {
    'model': {
        'num_in_ch': (3, _INT),
        'num_out_ch': (3, _INT),
        'num_feat': (64, _INT),
        'num_frame': (5, _INT),
        'deformable_groups': (8, _INT),
        'num_extract_block': (5, _INT),
        'num_reconstruct_block': (10, _INT),
        'num_upsample_feat': (64, _INT),
        'center_frame_idx': (None, _OPTIONAL_INT),
        'hr_in': (False, bool),
        'with_predeblur': (False, bool),
        'with_tsa': (True, bool),
    },
    # Training and data sections (issue 4): read by edvr.train, edvr.evaluate and
    # edvr.data.pipeline; keys and defaults follow BasicSR 1.4.2's EDVR training options.
    'train': {
        'batch_size': (16, _INT),
        'max_steps': (600000, _INT),
        'max_minutes': (None, (float, type(None))),  # wall-clock limit on training, if set
        'lr': (4e-4, float),
        'beta1': (0.9, float),
        'beta2': (0.99, float),
        'scheduler_periods': ([50000, 100000, 150000, 150000, 150000], list),
        'restart_weights': ([1, 0.5, 0.5, 0.5, 0.5], list),
        'eta_min': (1e-7, float),
        'tsa_iter': (50000, _INT),  # fusion-only warm-up; 0 disables it
        'dcn_lr_mul': (1.0, float),
        'loss': ('charbonnier', str),  # charbonnier | l1 | l2
        'loss_reduction': ('sum', str),  # sum | mean
        'charbonnier_eps': (1e-6, float),
        'seed': (0, _INT),
        'log_every': (100, _INT),  # scalar summaries, offset monitor
        'image_summary_every': (1000, _INT),
        'checkpoint_every': (5000, _INT),
        'max_to_keep': (5, _INT),
        # A checkpoint save that fails (full disk, I/O error): stop the run (false), or
        # warn and try again at the next checkpoint_every (true).
        'keep_going_on_save_error': (False, bool),
        'validate_every': (5000, _INT),  # 0: no validation, not even at the end
        'val_crop_border': (0, _INT),
        'offset_warning_threshold': (100.0, float),
        # Mixed precision (edvr.precision; --precision overrides): on the NPU precision_mode
        # allow_mix_precision (float16); on a CPU with native bfloat16, bfloat16 compute on
        # float32 variables. The loss scale, --device npu only: 'dynamic', a positive number
        # (fixed) or null (none).
        'mixed_precision': (True, bool),
        'loss_scale': ('dynamic', (str, float, type(None))),
    },
    'data': {
        'lr_crop': (64, _INT),  # LR training crop; the GT crop is 4x
        'use_flip': (True, bool),
        'use_rotation': (True, bool),
        'use_temporal_reverse': (False, bool),
        'num_parallel_calls': (8, _INT),
        'prefetch': (4, _INT),
        'val_padding': ('reflection_circle', str),
        'verify_pixels': (False, bool),  # full PNG check at start, not only headers
    },
    # Session thread pools of edvr.train, edvr.infer and edvr.evaluate (edvr.session);
    # 0: chosen for the machine. The --intra_op_threads / --inter_op_threads flags override.
    'threads': {
        'intra_op': (0, _INT),  # threads one op splits its work over
        'inter_op': (0, _INT),  # ops run at the same time
    },
    # Multi-worker training from TF_CONFIG (edvr.training.distributed): seconds a collective
    # waits for the other workers before this worker stops with an error naming the lost one
    # (--collective_timeout overrides); the first collective waits for all workers to start.
    'distributed': {
        'collective_timeout': (60.0, float),
        'startup_timeout': (600.0, float),
    },
}


def _type_name(types):
    types = types if isinstance(types, tuple) else (types,)
    return ' or '.join('null' if t is type(None) else t.__name__ for t in types)


def _check_value(source, section, key, value, types):
    types_tuple = types if isinstance(types, tuple) else (types,)
    if float in types_tuple and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is a subclass of int: `num_feat: true` must not pass as an int.
    ok = isinstance(value, types_tuple) and not (
        isinstance(value, bool) and bool not in types_tuple
    )
    if not ok:
        raise ConfigError(
            f'{source}: {section}.{key} must be {_type_name(types)}, '
            f'got {value!r} ({type(value).__name__})'
        )
    return value


def _unknown(source, what, name, known):
    close = difflib.get_close_matches(name, known, n=1)
    hint = f'; did you mean {close[0]!r}?' if close else ''
    return ConfigError(
        f'{source}: unknown {what} {name!r}{hint} (known: {", ".join(sorted(known))})'
    )


def parse_config(mapping, source='<dict>'):
    """Validate ``mapping`` against ``SCHEMA``; return its sections with defaults filled in."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(
            f'{source}: top level must be a mapping of sections, got {type(mapping).__name__}'
        )
    config = {}
    for section, fields in SCHEMA.items():
        config[section] = {key: copy.deepcopy(default) for key, (default, _) in fields.items()}
    for section, values in mapping.items():
        if section not in SCHEMA:
            raise _unknown(source, 'section', section, SCHEMA)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f'{source}: section {section!r} must be a mapping, got {values!r}')
        fields = SCHEMA[section]
        for key, value in values.items():
            if key not in fields:
                raise _unknown(source, f'key in section {section!r}:', key, fields)
            config[section][key] = _check_value(source, section, key, value, fields[key][1])
    check_model_config(config['model'], source)
    return config


def check_model_config(model, source='<dict>'):
    """Cross-key checks of the ``model`` section (widths that must divide, valid indices)."""

    def fail(message):
        raise ConfigError(f'{source}: model.{message}')

    for key in (
        'num_in_ch',
        'num_out_ch',
        'num_feat',
        'num_frame',
        'deformable_groups',
        'num_upsample_feat',
    ):
        if model[key] < 1:
            fail(f'{key} must be positive, got {model[key]}')
    for key in ('num_extract_block', 'num_reconstruct_block'):
        if model[key] < 0:
            fail(f'{key} must be >= 0, got {model[key]}')
    if model['num_feat'] % model['deformable_groups']:
        fail(
            f'deformable_groups must divide num_feat ({model["num_feat"]}), '
            f'got {model["deformable_groups"]}'
        )
    if model['num_in_ch'] != model['num_out_ch']:
        fail(
            f'num_out_ch must equal num_in_ch ({model["num_in_ch"]}) because the output adds '
            f'the upsampled centre frame, got {model["num_out_ch"]}'
        )
    center = model['center_frame_idx']
    if center is not None and not 0 <= center < model['num_frame']:
        fail(f'center_frame_idx must be in [0, num_frame={model["num_frame"]}), got {center}')
    if model['hr_in'] and not model['with_predeblur']:
        fail(
            'hr_in: true needs with_predeblur: true (as in BasicSR, the pre-deblur module '
            'holds the two stride-2 convs that bring high-resolution input down by 4), '
            'got with_predeblur: false'
        )


# Where the presets (configs/*.yaml of the repository) are found: inside the installed
# package (`pip install .` copies them there), then a clone's configs/ beside edvr/.
PRESET_DIRS = (
    os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs'),
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs'),
)


def resolve_config_path(path):
    """``path`` itself if it exists. Otherwise, when it names a preset as the README writes
    it (``configs/edvr_tiny.yaml``, ``edvr_tiny.yaml`` or ``edvr_tiny``), the preset of that
    name from ``PRESET_DIRS``, so that the README's commands also work outside a clone.
    Anything else is returned unchanged (and fails to open, naming it)."""
    path = str(path)
    folder, name = os.path.split(path)
    if os.path.exists(path) or os.path.basename(folder) not in ('', 'configs'):
        return path
    if not name.endswith(('.yaml', '.yml')):
        name += '.yaml'
    for presets in PRESET_DIRS:
        if os.path.isfile(os.path.join(presets, name)):
            return os.path.join(presets, name)
    return path


def load_config(path):
    """Read and validate the YAML config at ``path`` (or the preset it names, see
    ``resolve_config_path``)."""
    path = resolve_config_path(path)
    try:
        with open(path, encoding='utf-8') as f:
            try:
                mapping = yaml.safe_load(f)
            except yaml.YAMLError as e:
                raise ConfigError(f'{path}: not valid YAML: {e}') from None
    except FileNotFoundError:
        raise ConfigError(f'--config {path}: no such file') from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ConfigError(
            f'--config {path}: cannot be read as a YAML config '
            f'({type(e).__name__}: {getattr(e, "strerror", None) or e})'
        ) from None
    return parse_config(mapping, source=str(path))


RUN_CONFIG = 'config.yaml'  # edvr.train writes the run's config here, beside its checkpoints


def load_run_config(path, checkpoint):
    """The config at ``path`` or, when ``path`` is None, the ``config.yaml`` that edvr.train
    wrote into the run directory of ``checkpoint`` (a directory or a checkpoint prefix)."""
    if path is not None:
        return load_config(path)
    checkpoint = str(checkpoint)
    run_dir = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint) or '.'
    saved = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(saved):
        raise ConfigError(
            f'--config not given and --checkpoint {checkpoint} has no {saved} '
            f'(edvr.train writes {RUN_CONFIG} into its run directory); '
            f'pass --config'
        )
    return load_config(saved)
