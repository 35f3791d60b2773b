"""edvr.evaluate: its PSNR/SSIM (RGB and Y) against NumPy/scikit-image on the saved frames."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from edvr import cli, evaluate
from edvr.data import reds


def numpy_psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def numpy_y(image):
    """BT.601 studio luma of an 8-bit RGB image, as MATLAB's rgb2ycbcr (float, not rounded)."""
    r, g, b = [image[..., i].astype(np.float64) for i in range(3)]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def numpy_ssim(a, b):
    """SSIM of Wang et al. (Gaussian 11x11, sigma 1.5), channel mean, as BasicSR."""
    return structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=-1 if a.ndim == 3 else None,
    )


def read(path):
    return np.asarray(Image.open(path))


@pytest.mark.parametrize('crop_border', [0, 4])
def test_metrics_match_numpy(tiny_data, tiny_run, tmp_path, crop_border):
    config, run = tiny_run
    images = tmp_path / 'images'
    results_file = tmp_path / 'results.json'
    assert (
        evaluate.main(
            [
                '--config',
                config,
                '--checkpoint',
                run,
                '--data_dir',
                tiny_data,
                '--split',
                'val',
                '--json',
                str(results_file),
                '--save_images',
                str(images),
                '--crop_border',
                str(crop_border),
            ]
        )
        == 0
    )
    with open(results_file) as f:
        results = json.load(f)
    assert results['step'] == 2 and results['checkpoint'].endswith('model.ckpt-2')
    spec = reds.read_split(tiny_data, 'val')
    c = crop_border
    for video in spec.videos:
        scores = {'edvr': [], 'bicubic': []}
        for i in range(video.nframes):
            gt = read(os.path.join(tiny_data, 'images', video.name, 'truth', '%08d.png' % i))
            lr = read(os.path.join(tiny_data, 'images', video.name, 'blur4', '%08d.png' % i))
            out = read(str(images / video.name / ('%08d.png' % i)))
            h, w = gt.shape[:2]
            bicubic = np.asarray(Image.fromarray(lr).resize((w, h), Image.BICUBIC))
            for method, image in (('edvr', out), ('bicubic', bicubic)):
                a, b = image[c : h - c, c : w - c], gt[c : h - c, c : w - c]
                scores[method].append(
                    [
                        numpy_psnr(a, b),
                        numpy_ssim(a, b),
                        numpy_psnr(numpy_y(a), numpy_y(b)),
                        numpy_ssim(numpy_y(a), numpy_y(b)),
                    ]
                )
        for method in scores:
            expected = np.mean(scores[method], axis=0)
            got = results['clips'][video.name][method]
            assert results['clips'][video.name]['frames'] == video.nframes
            np.testing.assert_allclose([got['psnr'], got['psnr_y']], expected[[0, 2]], atol=2e-3)
            np.testing.assert_allclose([got['ssim'], got['ssim_y']], expected[[1, 3]], atol=2e-4)


def test_comparison_figure_and_errors(tiny_data, tiny_run, tmp_path, capsys):
    config, run = tiny_run
    figure = tmp_path / 'comparison.png'
    assert (
        evaluate.main(
            [
                '--config',
                config,
                '--checkpoint',
                run,
                '--data_dir',
                tiny_data,
                '--comparison',
                str(figure),
            ]
        )
        == 0
    )
    image = read(str(figure))
    assert image.shape[1] > 3 * 64 and image.shape[2] == 3
    missing = str(tmp_path / 'nope')
    assert (
        evaluate.main(['--config', config, '--checkpoint', missing, '--data_dir', tiny_data])
        == cli.EXIT_CHECKPOINT
    )
    assert f'--checkpoint {missing}: no such checkpoint' in capsys.readouterr().err
