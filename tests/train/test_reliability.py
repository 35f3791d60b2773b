"""Run folders that survive copying and moving, damaged checkpoints, a missing --config and
a full disk, through the command-line tools (issue 16)."""

import contextlib
import errno
import os
import resource
import shutil
import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.train.tiny_runs import run_train, tiny_config, train_argv, write_config
from edvr import cli, convert, evaluate, freeze, infer
from edvr import train as train_module
from edvr.config import parse_config
from edvr.checkpoint import (
    CheckpointDamagedError,
    CheckpointError,
    CheckpointSaveError,
    model_variable_shapes,
    newest_intact_checkpoint,
    resolve_checkpoint,
    verify_checkpoint,
    write_weights,
)

DATA = 'model.ckpt-{}.data-00000-of-00001'
INDEX = 'model.ckpt-{}.index'


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """(config path, run folder with model.ckpt-2 and model.ckpt-4); copy it before changing."""
    folder = tmp_path_factory.mktemp('trained')
    config = write_config(folder / 'tiny.yaml', tiny_config(max_steps=4))
    run_train(config, tiny_data, folder / 'run')
    return config, folder / 'run'


def copy_run(trained, tmp_path, name='run'):
    target = tmp_path / name
    shutil.copytree(str(trained[1]), str(target))
    return target


def clip_dir(tiny_data):
    return os.path.join(tiny_data, 'images', '002', 'blur4')


def read_frames(folder):
    return {
        name: np.asarray(tf.io.decode_png(tf.io.read_file(str(folder / name))))
        for name in sorted(os.listdir(folder))
    }


# --- portable run folders ---------------------------------------------------------------------


def test_copied_and_moved_run_restores_its_own_weights(trained, tiny_data, tmp_path):
    config, _ = trained
    original = copy_run(trained, tmp_path, 'original')
    copy = tmp_path / 'copy'
    shutil.copytree(str(original), str(copy))
    state = (copy / 'checkpoint').read_text()
    assert str(tmp_path) not in state and 'model_checkpoint_path: "model.ckpt-4"' in state
    # The copy goes on training: its latest checkpoint differs from the original's.
    step, _ = run_train(config, tiny_data, copy, '--resume', '--max_steps', '6')
    assert step == 6
    moved = tmp_path / 'moved'
    shutil.move(str(copy), str(moved))
    shutil.rmtree(str(original))

    assert resolve_checkpoint(str(moved)) == str(moved / 'model.ckpt-6')
    out_dir, out_prefix = tmp_path / 'out_dir', tmp_path / 'out_prefix'
    assert (
        infer.main(
            [
                '--config',
                config,
                '--checkpoint',
                str(moved),
                '--input',
                clip_dir(tiny_data),
                '--output',
                str(out_dir),
            ]
        )
        == 0
    )
    assert (
        infer.main(
            [
                '--config',
                config,
                '--checkpoint',
                str(moved / 'model.ckpt-6'),
                '--input',
                clip_dir(tiny_data),
                '--output',
                str(out_prefix),
            ]
        )
        == 0
    )
    by_dir, by_prefix = read_frames(out_dir), read_frames(out_prefix)
    assert by_dir.keys() == by_prefix.keys() and len(by_dir) == 4
    for name in by_dir:
        np.testing.assert_array_equal(by_dir[name], by_prefix[name], err_msg=name)


def test_state_file_pointing_outside_its_folder_is_refused(trained, tiny_data, tmp_path, capsys):
    config, original = trained
    copy = copy_run(trained, tmp_path)
    # What main wrote before issue 16: absolute paths, here those of the original run.
    (copy / 'checkpoint').write_text(
        f'model_checkpoint_path: "{original}/model.ckpt-4"\n'
        f'all_model_checkpoint_paths: "{original}/model.ckpt-4"\n'
    )
    with pytest.raises(CheckpointError, match=f'points at {original}/model.ckpt-4, outside {copy}'):
        resolve_checkpoint(str(copy))
    assert (
        infer.main(
            [
                '--config',
                config,
                '--checkpoint',
                str(copy),
                '--input',
                clip_dir(tiny_data),
                '--output',
                str(tmp_path / 'out'),
            ]
        )
        == cli.EXIT_CHECKPOINT
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'outside' in err and str(original) in err


def test_converted_checkpoint_folder_is_portable(tmp_path):
    cfg = parse_config(tiny_config())['model']
    values = {
        name: np.full(shape, 0.5, np.float32) for name, shape in model_variable_shapes(cfg).items()
    }
    write_weights(values, cfg, str(tmp_path / 'converted' / 'edvr_tiny'))
    assert (
        (tmp_path / 'converted' / 'checkpoint')
        .read_text()
        .startswith('model_checkpoint_path: "edvr_tiny"\n')
    )
    shutil.move(str(tmp_path / 'converted'), str(tmp_path / 'moved'))
    assert resolve_checkpoint(str(tmp_path / 'moved')) == str(tmp_path / 'moved' / 'edvr_tiny')


# --- damaged checkpoints ----------------------------------------------------------------------


def truncate(path):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


def flip_byte(path):
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))


DAMAGE = {  # kind: (file, how, what the message says)
    'truncated data file': (DATA, truncate, 'the file is truncated'),
    'flipped byte in the data file': (DATA, flip_byte, 'Checksum does not match'),
    'truncated index': (INDEX, truncate, 'no table magic number'),
    'flipped byte in the index': (INDEX, flip_byte, 'block checksum mismatch'),
    'deleted shard': (DATA, os.remove, 'is missing'),
}


def damage(run, step, kind):
    """Damages model.ckpt-STEP of ``run`` as ``kind`` says; returns the file damaged."""
    pattern, how, _ = DAMAGE[kind]
    path = str(run / pattern.format(step))
    how(path)
    return path


@pytest.mark.parametrize('kind', sorted(DAMAGE))
def test_verify_names_the_damaged_file(trained, tmp_path, kind):
    run = copy_run(trained, tmp_path)
    verify_checkpoint(str(run / 'model.ckpt-4'))  # whole before
    path = damage(run, 4, kind)
    with pytest.raises(CheckpointDamagedError) as info:
        verify_checkpoint(str(run / 'model.ckpt-4'))
    message = str(info.value)
    assert message.startswith(f'checkpoint {run}/model.ckpt-4 is damaged: {path} ')
    assert DAMAGE[kind][2] in message
    assert '\n' not in message
    verify_checkpoint(str(run / 'model.ckpt-2'))  # the other checkpoint is untouched


def test_verify_checks_every_shard_of_a_sharded_checkpoint(tmp_path):
    """Saver(sharded=True) writes one data file per device: the second one deleted is named."""
    (tmp_path / 'sharded').mkdir()
    prefix = str(tmp_path / 'sharded' / 'model.ckpt-1')
    with tf.Graph().as_default():
        variables = []
        for device in ('/cpu:0', '/cpu:1'):
            with tf.device(device):
                variables.append(
                    tf.compat.v1.get_variable(
                        f'v{device[-1]}', [64], initializer=tf.compat.v1.ones_initializer()
                    )
                )
        saver = tf.compat.v1.train.Saver(variables, sharded=True)
        config = tf.compat.v1.ConfigProto(device_count={'CPU': 2})
        with tf.compat.v1.Session(config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False)
    shards = sorted(f for f in os.listdir(tmp_path / 'sharded') if '.data-' in f)
    assert shards == ['model.ckpt-1.data-00000-of-00002', 'model.ckpt-1.data-00001-of-00002']
    verify_checkpoint(prefix)
    os.remove(f'{prefix}.data-00001-of-00002')
    with pytest.raises(
        CheckpointDamagedError, match=f'damaged: {prefix}.data-00001-of-00002 is missing'
    ):
        verify_checkpoint(prefix)


def tool_commands(config, tiny_data, checkpoint, out):
    return {
        'infer': (
            infer.main,
            [
                '--config',
                config,
                '--checkpoint',
                checkpoint,
                '--input',
                clip_dir(tiny_data),
                '--output',
                str(out / 'frames'),
            ],
        ),
        'evaluate': (
            evaluate.main,
            ['--config', config, '--checkpoint', checkpoint, '--data_dir', tiny_data],
        ),
        'freeze': (
            freeze.main,
            ['--config', config, '--checkpoint', checkpoint, '--output', str(out / 'export')],
        ),
        'train --resume': (
            train_module.main,
            train_argv(config, tiny_data, checkpoint, '--resume'),
        ),
    }


@pytest.mark.parametrize(
    'tool, kind',
    [
        ('infer', 'truncated data file'),
        ('evaluate', 'flipped byte in the data file'),
        ('freeze', 'truncated index'),
        ('train --resume', 'deleted shard'),
    ],
)
def test_tools_report_a_damaged_checkpoint_in_one_line(
    trained, tiny_data, tmp_path, capsys, tool, kind
):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    damaged = [damage(run, step, kind) for step in (2, 4)]  # train --resume: no intact one
    capsys.readouterr()
    main, argv = tool_commands(config, tiny_data, str(run), tmp_path)[tool]
    assert main(argv) == cli.EXIT_CHECKPOINT
    lines = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line
        and not line.startswith(('WARNING', 'I0000', 'W0000', 'Instructions', 'Use ', 'To enable'))
    ]
    assert len(lines) == 1, lines
    assert f'{run}/model.ckpt-4 is damaged: {damaged[1]}' in lines[0]
    assert 'Traceback' not in lines[0]


def test_resume_falls_back_to_the_newest_intact_checkpoint(trained, tiny_data, tmp_path):
    config, _ = trained
    run = copy_run(trained, tmp_path)
    path = damage(run, 4, 'flipped byte in the data file')
    messages = []
    step, _ = run_train(config, tiny_data, run, '--resume', '--max_steps', '4', log=messages.append)
    assert step == 4
    warning = [m for m in messages if m.startswith('warning:')]
    assert (
        len(warning) == 1
        and path in warning[0]
        and f'Resuming from {run}/model.ckpt-2, the newest intact checkpoint' in warning[0]
    )
    assert any(m.startswith(f'resumed from {run}/model.ckpt-2 at step 2') for m in messages)
    # Steps 3 and 4 trained again: model.ckpt-4 is whole and equals the original run's.
    verify_checkpoint(str(run / 'model.ckpt-4'))
    assert newest_intact_checkpoint(str(run), warn=pytest.fail) == str(run / 'model.ckpt-4')
    again = tf.compat.v1.train.NewCheckpointReader(str(run / 'model.ckpt-4'))
    first = tf.compat.v1.train.NewCheckpointReader(str(trained[1] / 'model.ckpt-4'))
    for name in first.get_variable_to_shape_map():
        np.testing.assert_array_equal(first.get_tensor(name), again.get_tensor(name), name)


def test_resume_with_a_damaged_state_file_uses_the_folders_checkpoints(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    (run / 'checkpoint').write_bytes(b'model_checkpoint_path: "model.ck\xff')  # cut mid-write
    warnings = []
    assert newest_intact_checkpoint(str(run), warnings.append) == str(run / 'model.ckpt-4')
    assert len(warnings) == 1 and f'{run}/checkpoint is damaged' in warnings[0]


# --- a missing --config -----------------------------------------------------------------------


@pytest.mark.parametrize('tool', ['infer', 'evaluate', 'freeze', 'convert', 'train'])
def test_missing_config_is_one_line_naming_the_file(tmp_path, capsys, tool):
    missing = str(tmp_path / 'no_such.yaml')
    argv = {
        'infer': (infer.main, ['--checkpoint', 'x', '--input', 'x', '--output', 'x']),
        'evaluate': (evaluate.main, ['--checkpoint', 'x', '--data_dir', 'x']),
        'freeze': (freeze.main, ['--checkpoint', 'x', '--output', str(tmp_path / 'x')]),
        'convert': (convert.main, ['--from_torch', 'x.npz', '--output', str(tmp_path / 'x')]),
        'train': (train_module.main, ['--data_dir', 'x', '--output', str(tmp_path / 'x')]),
    }
    main, rest = argv[tool]
    assert main(['--config', missing, *rest]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.endswith(f'--config {missing}: no such file')


# --- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def file_size_limit(limit):
    """Writes past ``limit`` bytes fail with EFBIG, as on a full disk (a real OS-level error
    from write(2); SIGXFSZ is ignored so the write returns instead of killing the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture
def disk_full_at_step_4(monkeypatch):
    """The save of model.ckpt-4 runs with a 64 KiB file size limit (its data file is ~440 KiB,
    its index ~11 KiB): TensorFlow's writer gets EFBIG."""
    real_save = tf.compat.v1.train.Saver.save

    def save(self, sess, save_path, *args, **kwargs):
        if save_path.endswith('-4'):
            with file_size_limit(64 * 1024):
                return real_save(self, sess, save_path, *args, **kwargs)
        return real_save(self, sess, save_path, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.train.Saver, 'save', save)


def test_failed_save_stops_the_run_and_keeps_the_previous_checkpoint(
    tiny_data, tmp_path, capsys, disk_full_at_step_4
):
    config = write_config(tmp_path / 'tiny.yaml', tiny_config(max_steps=6))
    run = tmp_path / 'run'
    assert train_module.main(train_argv(config, tiny_data, run)) == cli.EXIT_CHECKPOINT
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        f'edvr.train: error: could not save checkpoint {run}/model.ckpt-4 at step 4'
    )
    assert f'the previous checkpoint {run}/model.ckpt-2 and the state file are intact' in err
    assert 'keep_going_on_save_error' in err
    assert sorted(os.listdir(run)) == [
        'checkpoint',
        'config.yaml',
        'logs',
        DATA.format(2),
        INDEX.format(2),
    ]
    assert (run / 'checkpoint').read_text() == (
        'model_checkpoint_path: "model.ckpt-2"\nall_model_checkpoint_paths: "model.ckpt-2"\n'
    )
    verify_checkpoint(str(run / 'model.ckpt-2'))


def test_keep_going_on_save_error_saves_at_the_next_interval(
    tiny_data, tmp_path, disk_full_at_step_4
):
    config = write_config(
        tmp_path / 'tiny.yaml', tiny_config(max_steps=6, keep_going_on_save_error=True)
    )
    run, messages = tmp_path / 'run', []
    step, _ = run_train(config, tiny_data, run, log=messages.append)
    assert step == 6
    assert any(
        m.startswith(f'warning: could not save checkpoint {run}/model.ckpt-4 at step 4')
        and 'saves again at the next checkpoint' in m
        for m in messages
    )
    assert not [f for f in os.listdir(run) if 'ckpt-4' in f]
    state = tf.compat.v1.train.get_checkpoint_state(str(run))
    assert list(state.all_model_checkpoint_paths) == [
        str(run / 'model.ckpt-2'),
        str(run / 'model.ckpt-6'),
    ]
    verify_checkpoint(str(run / 'model.ckpt-6'))


def test_failed_state_write_removes_the_new_checkpoint_files(tiny_data, tmp_path, monkeypatch):
    """The data and index of step 4 are written, then the state file cannot be (injected
    ENOSPC): the step-4 files go, the state file still names model.ckpt-2."""
    real_update = tf.compat.v1.train.update_checkpoint_state

    def update(save_dir, model_checkpoint_path, *args, **kwargs):
        if model_checkpoint_path.endswith('-4'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'checkpoint.tmp')
        return real_update(save_dir, model_checkpoint_path, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.train, 'update_checkpoint_state', update)
    config = write_config(tmp_path / 'tiny.yaml', tiny_config(max_steps=4))
    run = tmp_path / 'run'
    with pytest.raises(CheckpointSaveError, match='No space left on device'):
        run_train(config, tiny_data, run)
    assert sorted(os.listdir(run)) == [
        'checkpoint',
        'config.yaml',
        'logs',
        DATA.format(2),
        INDEX.format(2),
    ]
    assert newest_intact_checkpoint(str(run), warn=pytest.fail) == str(run / 'model.ckpt-2')
