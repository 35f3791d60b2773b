"""Cross-key checks of the ``train`` and ``data`` config sections (types are checked by
``edvr.config``)."""

from edvr.data.frame_indices import PADDINGS
from edvr.training.losses import LOSSES, REDUCTIONS
from edvr.training.lr_schedule import check_schedule


def check_train_config(config, source='<config>'):
    """Raises ValueError naming the key, what it got and what was expected."""
    train, data = config['train'], config['data']

    def fail(key, got, expected):
        raise ValueError(f'{source}: {key} must be {expected}, got {got!r}')

    for key in (
        'batch_size',
        'max_steps',
        'log_every',
        'image_summary_every',
        'checkpoint_every',
        'max_to_keep',
    ):
        if train[key] < 1:
            fail(f'train.{key}', train[key], 'a positive integer')
    for key in ('validate_every', 'tsa_iter', 'val_crop_border'):
        if train[key] < 0:
            fail(f'train.{key}', train[key], '>= 0 (0 disables it)')
    if train['lr'] <= 0:
        fail('train.lr', train['lr'], 'positive')
    for key in ('beta1', 'beta2'):
        if not 0 <= train[key] < 1:
            fail(f'train.{key}', train[key], 'in [0, 1)')
    if train['dcn_lr_mul'] < 0:
        fail('train.dcn_lr_mul', train['dcn_lr_mul'], '>= 0')
    if train['loss'] not in LOSSES:
        fail('train.loss', train['loss'], f'one of {LOSSES}')
    if train['loss_reduction'] not in REDUCTIONS:
        fail('train.loss_reduction', train['loss_reduction'], f'one of {REDUCTIONS}')
    scale = train['loss_scale']
    if scale is not None and scale != 'dynamic' and not (isinstance(scale, float) and scale > 0):
        fail('train.loss_scale', scale, "'dynamic', a positive number or null")
    if train['max_minutes'] is not None and train['max_minutes'] <= 0:
        fail('train.max_minutes', train['max_minutes'], 'positive or null')
    try:
        check_schedule(
            train['scheduler_periods'],
            train['restart_weights'],
            train['eta_min'],
            train['max_steps'],
        )
    except ValueError as e:
        raise ValueError(f'{source}: {e}') from None
    if data['lr_crop'] < 1 or data['lr_crop'] % 4:
        fail('data.lr_crop', data['lr_crop'], 'a positive multiple of 4 (the model pools by 4)')
    if data['num_parallel_calls'] < 1 and data['num_parallel_calls'] != -1:
        fail('data.num_parallel_calls', data['num_parallel_calls'], 'positive, or -1 (AUTOTUNE)')
    if data['val_padding'] not in PADDINGS:
        fail('data.val_padding', data['val_padding'], f'one of {PADDINGS}')
