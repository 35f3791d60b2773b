"""edvr.cli: every tool exits with the code README.md's table gives, after one line
``edvr.TOOL: error: ...``, for a usage error, a bad input and (where it reads one) a
missing checkpoint."""

import os
import re

import pytest

from edvr import cli, convert, evaluate, freeze, infer, train
from edvr.checkpoint import CheckpointError, CheckpointSaveError
from edvr.data import download_reds, regroup_reds, synthetic
from edvr.training.distributed import WorkerLostError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, 'configs', 'edvr_tiny.yaml')
TOOLS = {
    'train': train.main,
    'infer': infer.main,
    'evaluate': evaluate.main,
    'convert': convert.main,
    'freeze': freeze.main,
    'data.download_reds': download_reds.main,
    'data.regroup_reds': regroup_reds.main,
    'data.synthetic': synthetic.main,
}


def readme_exit_codes():
    """{code: meaning} of the table in README.md's "Exit codes" section."""
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    section = text[text.index('\n## Exit codes') :]
    return {
        int(code): meaning.strip()
        for code, meaning in re.findall(r'^\| (\d+) \| (.+) \|$', section, re.MULTILINE)
    }


def test_readme_documents_the_table():
    assert readme_exit_codes() == dict(cli.EXIT_CODES)


def one_error_line(capsys, tool):
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith('edvr.')]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f'edvr.{tool}: error: '), lines[0]
    return lines[0]


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_usage_error(tool, capsys):
    with pytest.raises(SystemExit) as exit_:
        TOOLS[tool](['--no_such_flag'])
    assert exit_.value.code == cli.EXIT_USAGE
    assert f'edvr.{tool}: error: ' in capsys.readouterr().err  # argparse's prefix, the same


def bad_inputs(tmp_path):
    """Per tool: (argv with a bad input, expected code, part of the message)."""
    missing = str(tmp_path / 'missing.yaml')
    nothing = str(tmp_path / 'nothing')
    return {
        'train': (
            ['--config', missing, '--output', str(tmp_path / 'run')],
            cli.EXIT_USAGE,
            f'--config {missing}: no such file',
        ),
        'infer': (
            [
                '--config',
                TINY,
                '--checkpoint',
                nothing,
                '--input',
                nothing,
                '--output',
                str(tmp_path / 'out'),
            ],
            cli.EXIT_USAGE,
            f'--input {nothing}',
        ),
        'evaluate': (
            ['--config', TINY, '--checkpoint', nothing, '--data_dir', nothing],
            cli.EXIT_CHECKPOINT,
            f'--checkpoint {nothing}: no such checkpoint',
        ),
        'convert': (
            ['--config', TINY, '--from_torch', nothing + '.npz', '--output', nothing],
            cli.EXIT_USAGE,
            nothing + '.npz',
        ),
        'freeze': (
            ['--config', TINY, '--checkpoint', nothing, '--output', nothing],
            cli.EXIT_CHECKPOINT,
            f'--checkpoint {nothing}: no such checkpoint',
        ),
        'data.download_reds': (
            ['--root_dir', REPO + '/README.md', '--val_sharp'],
            cli.EXIT_USAGE,
            'README.md',
        ),  # a file, not a folder
        'data.regroup_reds': (
            ['--src', nothing, '--dst', str(tmp_path / 'dst')],
            cli.EXIT_USAGE,
            nothing,
        ),
        'data.synthetic': (
            ['--output', str(tmp_path / 'synthetic'), '--gt_height', '10'],
            cli.EXIT_USAGE,
            'gt_height must be a multiple of 4',
        ),
    }


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_bad_input(tool, tmp_path, capsys):
    argv, code, message = bad_inputs(tmp_path)[tool]
    assert TOOLS[tool](argv) == code
    assert message in one_error_line(capsys, tool)


@pytest.mark.parametrize(
    'error, code',
    [
        (CheckpointError('x'), cli.EXIT_CHECKPOINT),
        (CheckpointSaveError('x'), cli.EXIT_CHECKPOINT),
        (ValueError('x'), cli.EXIT_USAGE),
        (FileNotFoundError('x'), cli.EXIT_USAGE),
        (FloatingPointError('x'), cli.EXIT_NONFINITE),
        (WorkerLostError('x'), cli.EXIT_WORKER_LOST),
        (download_reds.DownloadError('x'), cli.EXIT_DOWNLOAD),
    ],
)
def test_errors_map_to_the_table(error, code, capsys):
    def body(args):
        raise error

    assert cli.run('tool', body, None) == code
    assert capsys.readouterr().err == 'edvr.tool: error: x\n'


def test_interrupt_and_bugs():
    def interrupted(args):
        raise KeyboardInterrupt('nothing written to out')

    def bug(args):
        raise KeyError('a bug keeps its traceback')

    assert cli.run('tool', interrupted, None) == cli.EXIT_INTERRUPTED
    with pytest.raises(KeyError):
        cli.run('tool', bug, None)
    assert cli.run('tool', lambda args: None, None) == cli.EXIT_OK
