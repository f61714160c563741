"""Task 3: tell real faces (FFHQ) from StyleGAN fakes with one linear layer on log-scaled spectra.

    python src/util.py ffhq-download                   # the 70,000 + 70,000 images, into data/ffhq_style_gan
    python src/deepfake_interpretation.py              # spectra, mean plots, train, test, weight plots
    python src/deepfake_interpretation.py --representation all    # the same on FFT, DCT and pixels: a table
    sbatch scripts/train.slurm                         # the same on a SLURM GPU node

Without the real data, a synthetic stand-in (clearly labelled as such in every figure and log):

    python src/util.py ffhq-standin --per-class 5500
    python src/deepfake_interpretation.py --data data/ffhq_standin --train-size 4000 --val-size 500 \\
        --test-size 1000 --representation all

Each image is decoded once per run into a uint8 cache (N, 128, 128, 3) by `--workers` processes;
spectra are computed from that cache in batches, on the GPU when there is one, whenever they are
needed (statistics, every epoch, evaluation), so memory does not grow beyond the cache. Means and
standard deviations are accumulated batch by batch, never by holding every spectrum.
"""

import argparse
import contextlib
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

import util
from util import (
    FIGURES_DIR,
    UserError,
    get_device,
    learning_rate,
    positive_int,
    relative,
    run_main,
    save_figure,
    set_seed,
)

EPS = 1e-8  # keeps log finite where a coefficient is exactly zero
IMAGE_SHAPE = (128, 128, 3)  # (H, W, C) of every image in ffhq_style_gan
CLASS_NAMES = ("real", "fake")  # label 0: FFHQ photographs (A_ffhq), label 1: StyleGAN (B_stylegan)
REPRESENTATION_NAMES = {
    "fft": "log |FFT2|",
    "dct": "log |DCT-II|",
    "pixel": "pixels",
}


def transform(image_data, eps=EPS):
    """The exercise's log-scaled spectrum: ln(|FFT2(I)| + eps) over rows and columns.

    image_data: numpy (..., H, W, C). np.fft.fft2 transforms the last two axes by default, which
    here would be width and colour; axes=(-3, -2) transforms height and width, channel by channel.
    """
    return np.log(np.abs(np.fft.fft2(image_data, axes=(-3, -2))) + eps)


def log_fft(images, eps=EPS):
    """`transform` in torch, channels first: uint8 or float (N, H, W, C) -> float32 (N, C, H, W).

    A real image's spectrum is conjugate-symmetric, |F[k, l]| = |F[-k, -l]|, so only the half
    from rfft2 is transformed and logged; the other half is mirrored in. On a CPU this is about
    twice as fast as fft2 followed by abs.
    """
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
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.to(dtype=dtype, device=device)


def dct2(x):
    """Orthonormal 2-D DCT-II over the last two axes of a float tensor (..., H, W)."""
    h, w = x.shape[-2:]
    return dct_matrix(h, x.dtype, x.device) @ x @ dct_matrix(w, x.dtype, x.device).T


def log_dct(images, eps=EPS):
    """ln(|DCT2(I)| + eps) per channel, as Frank et al. (2020): uint8 (N, H, W, C) -> float32 (N, C, H, W)."""
    return dct2(images.permute(0, 3, 1, 2).contiguous().float()).abs_().add_(eps).log_()


def pixels(images):
    """The raw pixel values, channels first: uint8 (N, H, W, C) -> float32 (N, C, H, W)."""
    return images.permute(0, 3, 1, 2).float()


REPRESENTATIONS = {"fft": log_fft, "dct": log_dct, "pixel": pixels}


class WelfordEstimator:
    """Running per-coefficient mean and standard deviation over batches (N, ...) of any size.

    Welford's update in the batched form of Chan et al.: each batch's mean and sum of squared
    deviations are merged into the running ones, in float64, so nothing but three arrays of one
    sample's shape is kept between batches.
    """

    def __init__(self):
        self.count = 0
        self.mean = None
        self.m2 = None

    def update(self, batch):
        n = batch.shape[0]
        # the batch's own statistics in its own precision (float32 spectra: 2.5x faster than
        # float64, relative error ~1e-7), merged into the running ones in float64
        batch_mean = batch.mean(dim=0)
        batch_m2 = (batch - batch_mean).square_().sum(dim=0).double()
        batch_mean = batch_mean.double()
        if self.mean is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta.square_() * (self.count * n / total)
        self.count = total

    def finalize(self):
        """(mean, standard deviation), float64, each of one sample's shape; the std divides by N."""
        if self.mean is None:
            raise ValueError("no data: update() was never called")
        return self.mean, (self.m2 / self.count).sqrt()


class LinearDetector(nn.Module):
    """The exercise's classifier: one nn.Linear on standardised coefficients; logits (real, fake).

    The training split's per-coefficient mean and std are buffers, so the model takes the
    representation as it comes (N, C, H, W) and a checkpoint carries its own standardisation.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean.float())  # (C, H, W)
        # a coefficient that never varies carries no information; don't divide by zero
        self.register_buffer("std", std.float().clamp_min(1e-6))
        self.dense = nn.Linear(mean.numel(), 2)

    def forward(self, features):  # (N, C, H, W)
        # dense((x - mean) / std), with the standardisation folded into the weights and bias:
        # one pass over the batch instead of three, and the same weights
        weight = self.dense.weight / self.std.flatten()  # (2, C*H*W)
        bias = self.dense.bias - weight @ self.mean.flatten()
        return F.linear(features.flatten(1), weight, bias)  # (N, 2)

    def weight_maps(self):
        """The weights reshaped like the input: (2, C, H, W), one map per class."""
        return self.dense.weight.detach().reshape(2, *self.mean.shape)


def default_workers():
    """CPU cores this process may use (SLURM's --cpus-per-task restricts the affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def read_image(path):
    """One image as uint8 (128, 128, 3); anything else is a UserError naming the file."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        raise UserError(
            f"{relative(path)} is not a readable image ({error}); delete or replace it and run again."
        ) from None
    if array.shape != IMAGE_SHAPE:
        raise UserError(
            f"{relative(path)} is {array.shape[1]}x{array.shape[0]} pixels, not 128x128; "
            "every image must be a 128x128 RGB picture as in ffhq_style_gan."
        )
    return array


def decode_chunk(files):
    """Decode a list of files into one uint8 array (n, 128, 128, 3); runs in a worker process."""
    return np.stack([read_image(path) for path in files])


def decode_images(files, workers, desc="decoding"):
    """Decode every file once into a uint8 tensor (N, 128, 128, 3), `workers` processes at a time.

    Processes, not threads: opening a PNG runs Python code in PIL that would hold Python's
    global lock. Each worker decodes a chunk of files and sends it back as one array, which
    is copied into the preallocated cache, so the cache is the only copy that stays.
    """
    images = torch.empty((len(files), *IMAGE_SHAPE), dtype=torch.uint8)
    view = images.numpy()
    chunk = max(16, min(256, math.ceil(len(files) / (4 * max(1, workers)))))
    starts = range(0, len(files), chunk)
    chunks = [files[start : start + chunk] for start in starts]
    with (
        contextlib.ExitStack() as stack,
        tqdm(total=len(files), desc=desc, unit="img", leave=False, file=sys.stderr) as progress,
    ):
        if workers <= 1 or len(starts) <= 1:
            blocks = map(decode_chunk, chunks)
        else:
            # fork: the workers start at once, with this module loaded; spawn and forkserver would
            # import torch again in every worker. They use only PIL and numpy, so forking is safe.
            context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
            pool = stack.enter_context(ProcessPoolExecutor(min(workers, len(starts)), mp_context=context))
            blocks = pool.map(decode_chunk, chunks)
        for start, block in zip(starts, blocks):
            view[start : start + len(block)] = block
            progress.update(len(block))
    return images


def check_data_folder(data_dir):
    """Raise a UserError saying how to get the data unless `data_dir` holds A_ffhq/ and B_stylegan/."""
    data_dir = Path(data_dir)
    how = (
        "run `python src/util.py ffhq-download` to fetch the FFHQ/StyleGAN images, or "
        "`python src/util.py ffhq-standin` to make a synthetic stand-in and pass --data data/ffhq_standin"
    )
    if not data_dir.is_dir():
        raise UserError(f"no image folder at {relative(data_dir)}; {how}.")
    for folder in (util.REAL_FOLDER, util.FAKE_FOLDER):
        if not (data_dir / folder).is_dir():
            raise UserError(
                f"{relative(data_dir)} has no {folder}/ folder; --data must hold {util.REAL_FOLDER}/ and "
                f"{util.FAKE_FOLDER}/ ({how})."
            )


def load_splits(data_dir, train_size, val_size, test_size, workers, skip_unreadable=False):
    """Decode the three splits: {"train"|"val"|"test": (uint8 images (N, 128, 128, 3), int64 labels (N,))}.

    Each split holds `*_size` real (label 0) then as many fake (label 1) images. All images are
    decoded in one go into one cache; the splits are slices of it, not copies.
    """
    check_data_folder(data_dir)
    real = util.load_folder(Path(data_dir) / util.REAL_FOLDER, train_size, val_size, test_size, skip_unreadable)
    fake = util.load_folder(Path(data_dir) / util.FAKE_FOLDER, train_size, val_size, test_size, skip_unreadable)
    files = [path for real_files, fake_files in zip(real, fake) for path in (*real_files, *fake_files)]
    cache = decode_images(files, workers, desc="decoding images")
    splits, start = {}, 0
    for name, real_files, fake_files in zip(("train", "val", "test"), real, fake):
        stop = start + len(real_files) + len(fake_files)
        labels = torch.cat([torch.zeros(len(real_files)), torch.ones(len(fake_files))]).long()
        splits[name] = (cache[start:stop], labels)
        start = stop
    return splits


def place_cache(images, device):
    """Move the uint8 cache to the GPU when it takes at most half the free memory there, else keep it on the CPU.

    On the GPU, batches are gathered without a host-to-device copy each time; on the CPU each
    batch is copied over when needed.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if images.numel() <= free // 2:
            return images.to(device)
    return images


def feature_batches(images, representation, device, batch_size, order=None):
    """Yield (index, features float32 (B, C, H, W) on `device`) over uint8 images (N, H, W, C)."""
    n = len(images)
    for start in range(0, n, batch_size):
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield index, REPRESENTATIONS[representation](images[index].to(device, non_blocking=True))


@torch.no_grad()
def standardisation(images, representation, device, batch_size):
    """Per-coefficient mean and std (C, H, W) of a split's representation, streamed in batches."""
    estimator = WelfordEstimator()
    for _, features in tqdm(
        feature_batches(images, representation, device, batch_size),
        total=math.ceil(len(images) / batch_size),
        desc=f"{representation}: training mean and std",
        leave=False,
        file=sys.stderr,
    ):
        estimator.update(features)
    return estimator.finalize()


@torch.no_grad()
def class_means(images, labels, representation, device, batch_size):
    """Mean representation of real and of fake images, (2, C, H, W) float64, streamed in batches."""
    sums, counts = None, torch.zeros(2, dtype=torch.float64, device=device)
    labels = labels.to(device)
    for index, features in feature_batches(images, representation, device, batch_size):
        y = labels[index]
        if sums is None:
            sums = torch.zeros((2, *features.shape[1:]), dtype=torch.float64, device=device)
        sums.index_add_(0, y, features.double())
        counts += torch.bincount(y, minlength=2)
    return sums / counts.clamp_min(1)[:, None, None, None]


def train_epoch(model, images, labels, representation, optimizer, device, batch_size, generator, desc):
    """One shuffled pass of cross-entropy training; returns the mean training loss."""
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    total, count = 0.0, 0
    progress = tqdm(
        feature_batches(images, representation, device, batch_size, order),
        total=math.ceil(len(images) / batch_size),
        desc=desc,
        leave=False,
        file=sys.stderr,
    )
    for step, (index, features) in enumerate(progress):
        y = labels[index.to(labels.device)].to(device)  # the cache may be on the CPU, the labels on the GPU
        loss = F.cross_entropy(model(features), y)
        if not torch.isfinite(loss):
            raise UserError(f"training diverged: the loss became {loss.item()}; lower --lr and run again.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(y)
        count += len(y)
        if step % 20 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
    return (total / count).item()


@torch.no_grad()
def evaluate(model, images, labels, representation, device, batch_size):
    """(accuracy, confusion matrix (2, 2) int64: rows the true class, columns the predicted one)."""
    model.eval()
    confusion = torch.zeros(2, 2, dtype=torch.int64, device=device)
    labels = labels.to(device)
    for index, features in feature_batches(images, representation, device, batch_size):
        predicted = model(features).argmax(dim=1)
        confusion += torch.bincount(labels[index] * 2 + predicted, minlength=4).reshape(2, 2)
    confusion = confusion.cpu()
    return (confusion.trace() / confusion.sum()).item(), confusion


def format_confusion(confusion):
    width = max(6, len(str(confusion.max().item())) + 2)
    lines = [" " * 14 + "".join(f"{name:>{width}}" for name in CLASS_NAMES)]
    for name, row in zip(CLASS_NAMES, confusion.tolist()):
        lines.append(f"  true {name:<7}" + "".join(f"{value:>{width}}" for value in row))
    return "\n".join(lines)


def radial_profile(spectrum):
    """Mean of an unshifted spectrum (H, W) over rings of equal frequency |f| (cycles per pixel).

    Returns (frequencies, means), one entry per ring of width 1/H; rings beyond 0.5 reach only
    into the corners of the spectrum.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    h, w = spectrum.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    ring = np.rint(np.hypot(fy, fx) * h).astype(int).ravel()
    sums = np.bincount(ring, weights=spectrum.ravel())
    counts = np.bincount(ring)
    keep = counts > 0
    return np.arange(len(sums))[keep] / h, sums[keep] / counts[keep]


def display_map(values, representation):
    """A (H, W) map as shown: FFT maps shifted so frequency zero is central."""
    values = np.asarray(values)
    return np.fft.fftshift(values) if representation == "fft" else values


def map_axes(ax, representation, shape):
    """Image extent and axis labels for a map of `representation`."""
    h, w = shape
    if representation == "fft":
        extent = (-0.5, 0.5 - 1 / w, 0.5 - 1 / h, -0.5)
        ax.set_xlabel("horizontal frequency (cycles/pixel)")
        ax.set_ylabel("vertical frequency (cycles/pixel)")
    elif representation == "dct":
        extent = (0, (w - 1) / (2 * w), (h - 1) / (2 * h), 0)
        ax.set_xlabel("horizontal frequency (cycles/pixel)")
        ax.set_ylabel("vertical frequency (cycles/pixel)")
    else:
        extent = (0, w, h, 0)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    return extent


def show_map(fig, ax, values, representation, title, signed, vmin=None, vmax=None, label=None):
    """One map with its colour bar; signed maps get a diverging colour map centred at zero.

    A few extreme coefficients (the zero frequency, a single artefact peak) would wash out the rest,
    so a signed map's colour range ends at the 99.5th percentile of |values|; the colour bar's
    pointed ends mark values beyond it.
    """
    values = display_map(values, representation)
    extend = "neither"
    if signed:
        limit = float(np.percentile(np.abs(values), 99.5)) or float(np.abs(values).max()) or 1.0
        vmin, vmax, cmap = -limit, limit, "RdBu_r"
        extend = "both" if np.abs(values).max() > limit else "neither"
    else:
        cmap = "viridis"
    extent = map_axes(ax, representation, values.shape)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label, extend=extend)


def quantity(representation):
    return {"fft": "mean ln(|FFT2| + eps)", "dct": "mean ln(|DCT| + eps)", "pixel": "mean pixel value"}[representation]


def plot_mean_maps(means, representation, source, path):
    """Mean representation of real and of fake images (channel average) and fake minus real."""
    import matplotlib.pyplot as plt

    real, fake = means.mean(dim=1).cpu().numpy()  # (H, W) each
    low, high = min(real.min(), fake.min()), max(real.max(), fake.max())
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    what = quantity(representation)
    show_map(fig, axes[0], real, representation, f"real: {what}", False, low, high, label=what)
    show_map(fig, axes[1], fake, representation, f"fake: {what}", False, low, high, label=what)
    show_map(fig, axes[2], fake - real, representation, "difference: fake − real", True, label="fake − real")
    where = " (shifted: frequency zero in the centre)" if representation == "fft" else ""
    fig.suptitle(f"{REPRESENTATION_NAMES[representation]} averaged over RGB and over {source}{where}", fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_radial_profile(means, source, path):
    """Mean log magnitude against radial frequency for real and fake images, and the gap."""
    import matplotlib.pyplot as plt

    real, fake = means.mean(dim=1).cpu().numpy()
    freq, real_profile = radial_profile(real)
    _, fake_profile = radial_profile(fake)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(2, 1))
    top.plot(freq, real_profile, ".-", ms=3, label="real")
    top.plot(freq, fake_profile, ".-", ms=3, label="fake")
    top.set_ylabel("mean ln(|FFT2| + eps)")
    top.legend()
    bottom.plot(freq, fake_profile - real_profile, ".-", ms=3, color="black")
    bottom.axhline(0, color="grey", lw=0.8)
    bottom.set_ylabel("fake − real")
    bottom.set_xlabel("radial frequency |f| (cycles/pixel)")
    for ax in (top, bottom):
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    top.text(
        0.505,
        0.5,
        "Nyquist (0.5): beyond it\nonly the corners",
        transform=top.get_xaxis_transform(),
        fontsize=8,
        color="grey",
    )
    top.set_title(f"Spectrum averaged over rings of equal frequency and RGB\n{source}", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_weights(weights, means, std, representation, source, test_accuracy, path):
    """The classifier's weights per class and their difference, next to the mean difference of the data.

    weights (2, C, H, W); means (2, C, H, W) of the real and fake images; std (C, H, W), the
    training split's spread that the classifier's inputs were divided by.
    """
    import matplotlib.pyplot as plt

    weights = weights.float().mean(dim=1).cpu().numpy()  # (2, H, W): averaged over RGB
    real_w, fake_w = weights
    difference = (means[1] - means[0]).mean(dim=0).cpu().numpy()
    radial = representation == "fft"
    fig = plt.figure(figsize=(21, 9.5 if radial else 5.2))
    grid = fig.add_gridspec(2 if radial else 1, 4, height_ratios=(1.25, 1) if radial else None)
    panels = [
        (real_w, "weights of the 'real' logit", "weight"),
        (fake_w, "weights of the 'fake' logit", "weight"),
        (fake_w - real_w, "fake − real weights: what decides\n(red pushes towards 'fake')", "weight"),
        (difference, f"data: {quantity(representation)}\nfake − real", "fake − real"),
    ]
    for column, (values, title, label) in enumerate(panels):
        show_map(fig, fig.add_subplot(grid[0, column]), values, representation, title, True, label=label)
    if radial:
        ax = fig.add_subplot(grid[1, :])
        freq, decision = radial_profile(fake_w - real_w)
        _, magnitude = radial_profile(np.abs(fake_w - real_w))
        # the weights act on standardised coefficients, so compare them with the gap in units of std
        standardised = ((means[1] - means[0]) / std).mean(dim=0).cpu().numpy()
        _, data = radial_profile(standardised)
        ax.plot(freq, decision, ".-", ms=3, color="tab:red", label="fake − real weight, ring mean")
        ax.plot(freq, magnitude, ".-", ms=3, color="tab:orange", label="|fake − real weight|, ring mean")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("radial frequency |f| (cycles/pixel)")
        ax.set_ylabel("weight (on standardised input)")
        twin = ax.twinx()
        twin.plot(freq, data, ".-", ms=3, color="tab:blue", label="data: (fake − real mean) / std, ring mean")
        twin.set_ylabel("(fake − real) / std of the coefficient", color="tab:blue")
        # both axes symmetric about zero, so their zero lines coincide
        ax.set_ylim(-1.1 * np.abs(magnitude).max(), 1.1 * np.abs(magnitude).max())
        twin.set_ylim(-1.1 * np.abs(data).max(), 1.1 * np.abs(data).max())
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.text(
            0.505,
            0.05,
            "Nyquist (0.5): beyond it only the corners",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            color="grey",
        )
        lines = ax.get_lines()[:2] + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="upper left")
        ax.grid(alpha=0.3)
        ax.set_title("the same along radial frequency", fontsize=10)
    fig.suptitle(
        f"One nn.Linear on standardised {REPRESENTATION_NAMES[representation]} (RGB averaged), "
        f"test accuracy {test_accuracy:.2%}\n{source}",
        fontsize=12,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def describe_source(data_dir, split_name, count):
    """The data named in every title and log line; stand-in data always says so."""
    split = {"val": "validation", "test": "test", "train": "training"}[split_name]
    if util.is_standin(data_dir):
        return f"{count:,} {split} images of the SYNTHETIC STAND-IN (not FFHQ/StyleGAN)"
    return f"{count:,} {split} images, FFHQ vs StyleGAN"


def run_representation(args, splits, representation, device):
    """Statistics, training, test and figures for one representation; returns a result dict."""
    x_train, y_train = splits["train"]
    x_val, y_val = splits["val"]
    x_test, y_test = splits["test"]
    x_eval, y_eval = splits[args.eval_split]
    source = describe_source(args.data, args.eval_split, len(x_eval))
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    mean, std = standardisation(x_train, representation, device, args.batch_size)
    model = LinearDetector(mean, std).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    val_accuracies = []
    for epoch in range(1, args.epochs + 1):
        desc = f"{representation}: epoch {epoch}/{args.epochs}"
        loss = train_epoch(model, x_train, y_train, representation, optimizer, device, args.batch_size, generator, desc)
        accuracy, _ = evaluate(model, x_val, y_val, representation, device, args.batch_size)
        val_accuracies.append(accuracy)
        print(
            f"{representation}: epoch {epoch}: training loss {loss:.4f}, validation accuracy {accuracy:.2%}", flush=True
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - start
    test_accuracy, confusion = evaluate(model, x_test, y_test, representation, device, args.batch_size)
    print(f"{representation}: test accuracy {test_accuracy:.2%} on {len(x_test):,} test images")
    print(f"{representation}: confusion matrix (rows: true class, columns: predicted)\n{format_confusion(confusion)}")

    means = class_means(x_eval, y_eval, representation, device, args.batch_size)
    written = [plot_mean_maps(means, representation, source, args.out / f"deepfake_mean_{representation}.png")]
    if representation == "fft":
        written.append(plot_radial_profile(means, source, args.out / "deepfake_radial_profile.png"))
    written.append(
        plot_weights(
            model.weight_maps(),
            means,
            model.std,
            representation,
            f"trained on {describe_source(args.data, 'train', len(x_train))}; data panels: {source}",
            test_accuracy,
            args.out / f"deepfake_weights_{representation}.png",
        )
    )
    for path in written:
        print(f"wrote {relative(path)}")
    return {
        "representation": representation,
        "val_accuracy": val_accuracies[-1] if val_accuracies else float("nan"),
        "test_accuracy": test_accuracy,
        "confusion": confusion,
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "model": model,
        "means": means,
    }


def format_table(results):
    lines = [f"{'representation':<16}{'validation':>12}{'test':>10}{'seconds':>10}"]
    for r in results:
        name = f"{r['representation']} ({REPRESENTATION_NAMES[r['representation']]})"
        lines.append(f"{name:<16}{r['val_accuracy']:>12.2%}{r['test_accuracy']:>10.2%}{r['seconds']:>10.1f}")
    return "\n".join(lines)


def run(args):
    """The whole task for parsed `args`; returns the list of result dicts, one per representation."""
    set_seed(args.seed)
    device = get_device(args.device)
    check_data_folder(args.data)
    standin = util.is_standin(args.data)
    if standin:
        print(
            f"data: {relative(args.data)} is the SYNTHETIC STAND-IN made by `python src/util.py ffhq-standin`, "
            "not FFHQ/StyleGAN; its accuracies say nothing about real deepfakes."
        )
    else:
        print(f"data: {relative(args.data)}")
    start = time.perf_counter()
    splits = load_splits(args.data, args.train_size, args.val_size, args.test_size, args.workers, args.skip_unreadable)
    decode_seconds = time.perf_counter() - start
    total = sum(len(x) for x, _ in splits.values())
    print(
        f"decoded {total:,} images ({args.train_size:,} / {args.val_size:,} / {args.test_size:,} per source for "
        f"train / validation / test) with {args.workers} workers in {decode_seconds:.1f} s "
        f"({total / decode_seconds:,.0f} images/s); device {device}"
    )
    splits = {name: (place_cache(x, device), y.to(device)) for name, (x, y) in splits.items()}
    representations = list(REPRESENTATIONS) if args.representation == "all" else [args.representation]
    results = [run_representation(args, splits, r, device) for r in representations]
    for result in results:
        result["decode_seconds"] = decode_seconds
    if len(results) > 1:
        print("\n" + ("STAND-IN DATA, not FFHQ/StyleGAN\n" if standin else "") + format_table(results))
    print(f"total {time.perf_counter() - start:.1f} s")
    return results


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=util.FFHQ_SOURCE_DIR,
        help=f"folder holding {util.REAL_FOLDER}/ and {util.FAKE_FOLDER}/ (default: {relative(util.FFHQ_SOURCE_DIR)})",
    )
    for split, what, default in zip(("train", "val", "test"), ("training", "validation", "test"), util.FFHQ_SPLIT):
        parser.add_argument(
            f"--{split}-size", type=positive_int, default=default, help=f"{what} images per source (default: {default})"
        )
    parser.add_argument("--epochs", type=positive_int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--batch-size", type=positive_int, default=500, help="batch size (default: 500)")
    parser.add_argument("--lr", type=learning_rate, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument(
        "--representation",
        choices=[*REPRESENTATIONS, "all"],
        default="fft",
        help="what the linear layer sees: fft (the exercise), dct, pixel, or all three in turn (default: fft)",
    )
    parser.add_argument(
        "--eval-split",
        choices=["val", "test"],
        default="val",
        help="split whose mean spectra are plotted (default: val)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_workers(),
        help=f"processes decoding images (default: the cores this process may use, here {default_workers()})",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that are not 128x128 RGB PNG images and say how many (default: stop and name them)",
    )
    util.add_common_arguments(parser, out_default=FIGURES_DIR)
    return parser


def main():
    args = build_parser().parse_args()
    util.check_output_folder(args.out)
    run(args)


if __name__ == "__main__":
    run_main(main)
