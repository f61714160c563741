"""Task 3: tell real faces (FFHQ) from StyleGAN fakes with one linear layer on log-scaled spectra.

    python src/util.py ffhq-download                   # the 70,000 + 70,000 images, into data/ffhq_style_gan
    python src/deepfake_interpretation.py              # spectra, mean plots, train, test, weight plots
    python src/deepfake_interpretation.py --representation all    # the same on FFT, DCT and pixels: a table
    sbatch scripts/train.slurm                         # the same on a SLURM GPU node

Without the real data, a synthetic stand-in (clearly labelled as such in every figure and log):

    python src/util.py ffhq-standin --per-class 5500
    python src/deepfake_interpretation.py --data data/ffhq_standin --train-size 4000 --val-size 500 \\
        --test-size 1000 --representation all

GAN generators upsample, and upsampling leaves periodic traces in the spectrum that a linear
classifier can read (Frank et al. 2020, arXiv:2003.08685; Durall et al. 2020, arXiv:2003.01826).
`transform` below is the exercise's spectrum; `spectra.log_fft` computes the same on batches in
torch. Each image is decoded once per run into a uint8 cache (N, 128, 128, 3) by `--workers`
processes; spectra are computed from that cache in batches, on the GPU when there is one,
whenever they are needed (statistics, every epoch, evaluation), so memory does not grow beyond
the cache. Means and standard deviations are accumulated batch by batch (spectra.WelfordEstimator).
Figures are drawn by src/deepfake_plots.py.
"""

import argparse
import contextlib
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import util
from cli import (
    STANDIN_COMMAND,
    UserError,
    add_common_arguments,
    check_output_folder,
    device_from_argument,
    learning_rate,
    positive_int,
    run_main,
)
from common import FIGURES_DIR, InputError, default_workers, relative, set_seed, synchronise
from deepfake_plots import format_confusion, format_table, plot_mean_maps, plot_radial_profile, plot_weights
from spectra import EPS, REPRESENTATIONS, WelfordEstimator, feature_batches

CLASS_NAMES = ("real", "fake")  # label 0: FFHQ photographs (A_ffhq), label 1: StyleGAN (B_stylegan)


def transform(image_data, eps=EPS):
    """The exercise's log-scaled spectrum: ln(|FFT2(I)| + eps) over rows and columns.

    image_data: numpy (..., H, W, C), e.g. uint8 pixels. np.fft.fft2 transforms the last two axes
    by default, which here would be width and colour; axes=(-3, -2) transforms height and width,
    channel by channel. Returns float64 (..., H, W, C), unshifted (frequency zero at [0, 0]).
    """
    return np.log(np.abs(np.fft.fft2(image_data, axes=(-3, -2))) + eps)


def mean_difference(means):
    """The mean spectrum of the fakes minus that of the reals: means (2, C, H, W) -> (C, H, W)."""
    return means[1] - means[0]


class LinearDetector(nn.Module):
    """The exercise's classifier: one nn.Linear on standardised coefficients; logits (N, 2) for (real, fake).

    The training split's per-coefficient mean and std are buffers, so the model takes the
    representation as it comes (N, C, H, W) and a checkpoint carries its own standardisation.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean.float())  # (C, H, W)
        # a coefficient that never varies carries no information; don't divide by zero
        self.register_buffer("std", std.float().clamp_min(1e-6))
        self.linear = nn.Linear(mean.numel(), 2)

    def forward(self, features):
        """Logits (N, 2) for features (N, C, H, W) of the representation the detector was trained on."""
        # linear((x - mean) / std), with the standardisation folded into the weights and bias:
        # one pass over the batch instead of three, and the same weights
        weight = self.linear.weight / self.std.flatten()  # (2, C*H*W)
        bias = self.linear.bias - weight @ self.mean.flatten()
        return F.linear(features.flatten(1), weight, bias)  # (N, 2)

    def weight_maps(self):
        """The weights reshaped like the input: (2, C, H, W), one map per class."""
        return self.linear.weight.detach().reshape(2, *self.mean.shape)


def decode_chunk(files):
    """Decode a list of files into one uint8 array (n, 128, 128, 3); runs in a worker process."""
    return np.stack([util.read_rgb(path, util.IMAGE_SIZE) for path in files])


def decode_images(files, workers, desc="decoding"):
    """Decode every file once into a uint8 tensor (N, 128, 128, 3), `workers` processes at a time.

    Processes, not threads: opening a PNG runs Python code in PIL that would hold Python's
    global lock. Each worker decodes a chunk of files and sends it back as one array, which
    is copied into the preallocated cache, so the cache is the only copy that stays.
    """
    images = torch.empty((len(files), util.IMAGE_SIZE, util.IMAGE_SIZE, 3), dtype=torch.uint8)
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
    """Raise InputError unless `data_dir` holds A_ffhq/ and B_stylegan/ folders."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"no image folder at {relative(data_dir)}", hint="ffhq-data-folder")
    for folder in (util.REAL_FOLDER, util.FAKE_FOLDER):
        if not (data_dir / folder).is_dir():
            raise InputError(f"{relative(data_dir)} has no {folder}/ folder", hint="ffhq-data-layout")


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
    return estimator.finalise()


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


def train_epoch(model, images, labels, representation, optimiser, device, batch_size, generator, desc):
    """One shuffled pass of cross-entropy training; returns the mean training loss.

    Raises FloatingPointError when the loss stops being finite.
    """
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
            raise FloatingPointError(f"training diverged: the loss became {loss.item()}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
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


def describe_data(data_dir, split_name, count):
    """The data named in every title and log line; stand-in data always says so."""
    split = {"val": "validation", "test": "test", "train": "training"}[split_name]
    if util.is_standin(data_dir):
        return f"{count:,} {split} images of the SYNTHETIC STAND-IN (not FFHQ/StyleGAN)"
    return f"{count:,} {split} images, FFHQ vs StyleGAN"


def run_representation(args, splits, representation, device):
    """Statistics, training, test and figures for one representation; returns a result dict."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    mean, std = standardisation(x_train, representation, device, args.batch_size)
    model = LinearDetector(mean, std).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        desc = f"{representation}: epoch {epoch}/{args.epochs}"
        loss = train_epoch(model, x_train, y_train, representation, optimiser, device, args.batch_size, generator, desc)
        val_accuracy, _ = evaluate(model, x_val, y_val, representation, device, args.batch_size)
        print(
            f"{representation}: epoch {epoch}: training loss {loss:.4f}, validation accuracy {val_accuracy:.2%}",
            flush=True,
        )
    synchronise(device)
    train_seconds = time.perf_counter() - start
    test_accuracy, confusion = evaluate(model, x_test, y_test, representation, device, args.batch_size)
    print(f"{representation}: test accuracy {test_accuracy:.2%} on {len(x_test):,} test images")
    print(f"{representation}: confusion matrix (rows: true class, columns: predicted)\n{format_confusion(confusion)}")
    means = write_figures(args, splits, representation, model, test_accuracy, device)
    return {
        "representation": representation,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "confusion": confusion,
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "model": model,
        "means": means,
    }


def write_figures(args, splits, representation, model, test_accuracy, device):
    """The mean maps (and radial profile) of the evaluation split and the weight figure; returns the class means."""
    x_eval, y_eval = splits[args.eval_split]
    data_label = describe_data(args.data, args.eval_split, len(x_eval))
    means = class_means(x_eval, y_eval, representation, device, args.batch_size)  # (2, C, H, W)
    difference = mean_difference(means)  # (C, H, W)
    written = [
        plot_mean_maps(means, difference, representation, data_label, args.out / f"deepfake_mean_{representation}.png")
    ]
    if representation == "fft":
        written.append(plot_radial_profile(means, difference, data_label, args.out / "deepfake_radial_profile.png"))
    trained_on = f"trained on {describe_data(args.data, 'train', len(splits['train'][0]))}; data panels: {data_label}"
    weights_path = args.out / f"deepfake_weights_{representation}.png"
    written.append(
        plot_weights(
            model.weight_maps(), difference, model.std, representation, trained_on, test_accuracy, weights_path
        )
    )
    for path in written:
        print(f"wrote {relative(path)}")
    return means


def run(args):
    """The whole task for parsed `args`; returns the list of result dicts, one per representation."""
    set_seed(args.seed)
    device = device_from_argument(args.device)
    check_data_folder(args.data)
    standin = util.is_standin(args.data)
    if standin:
        print(
            f"data: {relative(args.data)} is the SYNTHETIC STAND-IN made by `{STANDIN_COMMAND}`, "
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
    try:
        results = [run_representation(args, splits, r, device) for r in representations]
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr and run again.") from None
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
    add_common_arguments(parser, out_default=FIGURES_DIR)
    return parser


def main():
    args = build_parser().parse_args()
    check_output_folder(args.out)
    run(args)


if __name__ == "__main__":
    run_main(main)
