"""`--checkpoint RUN_DIR` alone: edvr.evaluate and edvr.infer read the config.yaml that
edvr.train wrote into the run directory when `--config` is not given."""

import json
import os

import numpy as np
from PIL import Image

from edvr import evaluate, infer


def test_evaluate_reads_the_runs_config(tiny_data, tiny_run, tmp_path):
    config, run_dir = tiny_run
    assert os.path.isfile(os.path.join(run_dir, 'config.yaml'))  # written by edvr.train
    given, alone = tmp_path / 'given.json', tmp_path / 'alone.json'
    assert (
        evaluate.main(
            [
                '--config',
                config,
                '--checkpoint',
                run_dir,
                '--data_dir',
                tiny_data,
                '--json',
                str(given),
            ]
        )
        == 0
    )
    assert (
        evaluate.main(['--checkpoint', run_dir, '--data_dir', tiny_data, '--json', str(alone)]) == 0
    )
    assert json.loads(alone.read_text())['clips'] == json.loads(given.read_text())['clips']


def test_infer_reads_the_runs_config(tiny_run, tmp_path):
    """(edvr.freeze: tests/video/test_video_io.py)"""
    _, run_dir = tiny_run
    (tmp_path / 'in').mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(
            tmp_path / 'in' / f'{i:08d}.png'
        )
    assert (
        infer.main(
            [
                '--checkpoint',
                run_dir,
                '--input',
                str(tmp_path / 'in'),
                '--output',
                str(tmp_path / 'out'),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / 'out' / '00000000.png').size == (48, 32)


def test_neither_config_nor_run_config(tiny_data, tmp_path, capsys):
    (tmp_path / 'bare').mkdir()
    assert evaluate.main(['--checkpoint', str(tmp_path / 'bare'), '--data_dir', tiny_data]) == 2
    err = capsys.readouterr().err
    assert f'--config not given and --checkpoint {tmp_path / "bare"} has no ' in err
    assert 'pass --config' in err
