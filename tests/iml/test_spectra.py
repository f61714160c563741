"""src/iml/spectra.py: the torch batch path of Task 3 (log FFT, DCT, pixels) and the streamed statistics."""

import numpy as np
import pytest
import scipy.fft
import torch
from conftest import random_images

from deepfake_interpretation import transform
from iml.spectra import EPS, REPRESENTATIONS, dct2, dct_matrix, feature_batches, log_dct, log_fft


# heights and widths odd and even, one and three channels
@pytest.mark.parametrize(
    "shape", [(4, 128, 128, 3), (2, 7, 5, 3), (2, 6, 9, 1), (3, 9, 6, 3), (2, 8, 8, 2), (1, 1, 3, 3), (2, 4, 1, 1)]
)
def test_torch_spectrum_equals_numpy_transform_channels_first(shape):
    x = random_images(shape, seed=1)
    got = log_fft(torch.from_numpy(x))  # (N, C, H, W), float32
    assert got.shape == (shape[0], shape[3], shape[1], shape[2]) and got.dtype == torch.float32
    expected = transform(x)
    got = got.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-5)
    # in magnitudes, to float32 precision relative to the largest coefficient
    magnitude = np.exp(expected)
    np.testing.assert_allclose(np.exp(got), magnitude, rtol=1e-5, atol=1e-6 * magnitude.max())


def numpy_dct2(x):
    """The orthonormal DCT-II written out as its defining double sum (…, H, W)."""
    h, w = x.shape[-2:]
    i, k = np.arange(h), np.arange(h)
    j, m = np.arange(w), np.arange(w)
    cos_h = np.cos(np.pi * (2 * i[None, :] + 1) * k[:, None] / (2 * h))  # (k, i)
    cos_w = np.cos(np.pi * (2 * j[None, :] + 1) * m[:, None] / (2 * w))  # (m, j)
    scale_h = np.where(k == 0, np.sqrt(1 / h), np.sqrt(2 / h))
    scale_w = np.where(m == 0, np.sqrt(1 / w), np.sqrt(2 / w))
    out = np.einsum("ki,mj,...ij->...km", cos_h, cos_w, x)
    return out * scale_h[:, None] * scale_w[None, :]


def test_dct_is_orthonormal_dct_ii():
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 6))
    got = dct2(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, numpy_dct2(x), atol=1e-12)
    d = dct_matrix(16, torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(16, dtype=torch.float64))
    # orthonormal: energy is preserved; a constant image has only the zero-frequency coefficient
    np.testing.assert_allclose((got**2).sum(axis=(-2, -1)), (x**2).sum(axis=(-2, -1)))
    flat = dct2(torch.full((8, 8), 3.0, dtype=torch.float64))
    assert flat[0, 0].item() == pytest.approx(24.0) and flat.flatten()[1:].abs().max() < 1e-12
    images = random_images((2, 16, 16, 3))
    # compared as magnitudes: the log of a coefficient near zero magnifies float32 rounding
    magnitude = np.abs(numpy_dct2(images.transpose(0, 3, 1, 2).astype(np.float64))) + EPS
    got = np.exp(log_dct(torch.from_numpy(images)).numpy())
    np.testing.assert_allclose(got, magnitude, rtol=1e-4, atol=1e-6 * magnitude.max())


def test_dct_matches_scipy():
    x = np.random.default_rng(3).standard_normal((3, 10, 12))
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_feature_batches_visit_every_image_once_in_the_given_order():
    images = torch.from_numpy(random_images((10, 6, 6, 3), seed=8))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    batches = list(feature_batches(images, "pixel", torch.device("cpu"), batch_size=4, order=order))
    assert [len(features) for _, features in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([index for index, _ in batches]), order)
    for index, features in batches:
        assert torch.equal(features, images[index].permute(0, 3, 1, 2).float())
    in_order = list(feature_batches(images, "fft", torch.device("cpu"), batch_size=4))
    torch.testing.assert_close(torch.cat([f for _, f in in_order]), REPRESENTATIONS["fft"](images))
