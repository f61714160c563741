"""The fast torch batch path of Task 3: the representations a linear detector sees, computed on
batches of uint8 images (N, H, W, C) on any device, and their statistics streamed batch by batch.

`log_fft` equals the exercise's numpy `deepfake_interpretation.transform`, channels first
(tests/iml/test_spectra.py checks it); `log_dct` is the DCT variant of Frank et al. 2020
(arXiv:2003.08685); `pixels` are the raw values.
"""

import math

import torch

import util
from iml.deepfake_checks import check_channels_last
from iml.progress import progress
from iml.validation import check_choice, check_count, check_tensor

EPS = 1e-8  # keeps log finite where a coefficient is exactly zero
REPRESENTATION_NAMES = {
    "fft": "log |FFT2|",
    "dct": "log |DCT-II|",
    "pixel": "pixels",
}


def log_fft(images, eps=EPS):
    """`deepfake_interpretation.transform` in torch, channels first: uint8 or float (N, H, W, C) -> float32 (N, C, H, W).

    A real image's spectrum is conjugate-symmetric, |F[k, l]| = |F[-k, -l]|, so only the half
    from rfft2 is transformed and logged; the other half is mirrored in. On a CPU this is about
    twice as fast as fft2 followed by abs.
    """
    check_channels_last(images, "log_fft")
    x = images.permute(0, 3, 1, 2).contiguous().float()  # (N, C, H, W); FFTs are faster on contiguous data
    h, w = x.shape[-2:]
    half = torch.view_as_real(torch.fft.rfft2(x))  # (N, C, H, w//2 + 1, 2): real and imaginary parts
    half = (half[..., 0].square() + half[..., 1].square()).sqrt_().add_(eps).log_()
    out = x.new_empty(x.shape)
    out[..., : w // 2 + 1] = half
    negative_rows = (-torch.arange(h, device=x.device)) % h
    out[..., w // 2 + 1 :] = half[..., negative_rows, 1 : (w + 1) // 2].flip(-1)
    return out


def dct_matrix(n, dtype=torch.float32, device=None):
    """The orthonormal DCT-II matrix D (n, n): D @ x transforms a column, D.T @ D = identity."""
    check_count(n, "n", "dct_matrix")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)


def dct2(x):
    """Orthonormal 2-D DCT-II over the last two axes of a float tensor (..., H, W)."""
    if check_tensor(x, "x", "dct2").dim() < 2:
        raise ValueError(f"dct2 needs x of shape (..., H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    return dct_matrix(h, x.dtype, x.device) @ x @ dct_matrix(w, x.dtype, x.device).T


def log_dct(images, eps=EPS):
    """ln(|DCT2(I)| + eps) per channel, as Frank et al. (2020): uint8 (N, H, W, C) -> float32 (N, C, H, W)."""
    check_channels_last(images, "log_dct")
    return dct2(images.permute(0, 3, 1, 2).contiguous().float()).abs_().add_(eps).log_()


def pixels(images):
    """The raw pixel values, channels first: uint8 (N, H, W, C) -> float32 (N, C, H, W)."""
    check_channels_last(images, "pixels")
    return images.permute(0, 3, 1, 2).float()


REPRESENTATIONS = {"fft": log_fft, "dct": log_dct, "pixel": pixels}


def feature_batches(images, representation, device, batch_size, order=None, desc=None):
    """Yield (index, features float32 (B, C, H, W) on `device`) over uint8 images (N, H, W, C).

    order: a permutation of the N images to visit them in (None: in order). desc: what a progress
    bar that counts the batches says (None: no bar).
    """
    check_choice(representation, "representation", "feature_batches", tuple(REPRESENTATIONS))
    check_count(batch_size, "batch_size", "feature_batches")
    check_channels_last(images, "feature_batches")
    starts = range(0, len(images), batch_size)
    if desc is not None:
        starts = progress(starts, unit="batches", desc=desc, leave=False)
    for start in starts:
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield index, REPRESENTATIONS[representation](images[index].to(device, non_blocking=True))


@torch.no_grad()
def standardization(images, representation, device, batch_size):
    """Per-coefficient mean and std (C, H, W) of a split's representation, streamed in batches (util.WelfordEstimator)."""
    estimator = util.WelfordEstimator()
    desc = f"{representation}: training mean and std"
    for _, features in feature_batches(images, representation, device, batch_size, desc=desc):
        estimator.update(features)
    return estimator.finalize()
