"""Task 3: tell real faces (FFHQ) from StyleGAN fakes with one linear layer on log-scaled spectra.

    python src/util.py ffhq-download                   # the 70,000 + 70,000 images, into data/ffhq_style_gan
    python src/deepfake_interpretation.py              # spectra, mean plots, train, test, weight plots
    python src/deepfake_interpretation.py --representation all    # the same on FFT, DCT and pixels: a table
    sbatch scripts/train.slurm                         # the same on a SLURM GPU node

On other pictures, and what the resizing filter alone teaches the detector (resampling_study.py):

    python src/util.py ffhq-import --real DIR --fake DIR --out data/faces
    python src/deepfake_interpretation.py --data data/faces --train-size 150 --val-size 20 --test-size 30
    python src/deepfake_interpretation.py --resampling-study --real DIR --fake DIR

Without any of them, a synthetic stand-in (labelled as such in every figure and log):
`python src/util.py ffhq-standin --per-class 5500`, then `--data data/ffhq_standin`.

GAN generators upsample, leaving periodic traces in the spectrum that a linear classifier can read
(Frank et al. 2020, arXiv:2003.08685; Durall et al. 2020, arXiv:2003.01826). `transform` below is
the exercise's spectrum; `spectra.log_fft` is its batched torch twin. Figures: deepfake_plots.py.
"""

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import util
from iml.cli import (
    IMPORT_COMMAND,
    STANDIN_COMMAND,
    UserError,
    add_common_arguments,
    check_output_folder,
    check_output_outside,
    device_from_argument,
    int_range,
    learning_rate,
    path_argument,
    run_main,
    weight_decay,
)
from iml.common import FIGURES_DIR, default_workers, relative, set_seed, synchronize
from iml.deepfake_plots import (
    describe_data,
    format_confusion,
    format_table,
    plot_mean_maps,
    plot_radial_profile,
    plot_weights,
)
from iml.face_cache import check_data_folder, load_splits, place_cache
from iml.spectra import EPS, REPRESENTATIONS, feature_batches, standardization

STUDY_SPLIT = (150, 20, 30)  # training, validation, test images per class in the resampling study
WEIGHT_DECAY = 30.0  # chosen on the shared faces: bench/select_weight_decay.py
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


def wilson_interval(correct, total, z=1.959964):
    """The 95 % Wilson score interval (low, high) of a proportion `correct` / `total` (Wilson 1927).

    Unlike p ± z·sqrt(p(1 - p)/n) it stays in [0, 1] and is not empty at p = 0 or 1: 60 of 60 gives
    (0.940, 1.0). E. B. Wilson, J. Am. Stat. Assoc. 22 (1927) 209-212. Raises ValueError for total < 1.
    """
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got {correct} of {total}")
    p, z2 = correct / total, z * z
    center = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return max(0.0, center - half), min(1.0, center + half)


def format_accuracy(confusion, interval=True):
    """`accuracy (95 % interval low-high) on N images` of a confusion matrix (2, 2), for the log.

    The interval says how far the accuracy of unseen images of the same kind may be from the
    measured one; for the training split, which the model has seen, it would say nothing.
    """
    correct, total = confusion.trace().item(), confusion.sum().item()
    if not interval:
        return f"{correct / total:.2%} on {total:,} images"
    low, high = wilson_interval(correct, total)
    return f"{correct / total:.2%} (95 % interval {low:.1%}-{high:.1%}) on {total:,} images"


def fit_detector(args, splits, representation, device, log=print):
    """Standardise on the training split, then train a LinearDetector for args.epochs with Adam.

    args: lr, weight_decay (an L2 penalty, Adam's coupled form), epochs, batch_size and seed.
    `log` receives one line per epoch. Returns (model, validation accuracy after the last epoch).
    """
    (x_train, y_train), (x_val, y_val) = splits["train"], splits["val"]
    torch.manual_seed(args.seed)
    mean, std = standardization(x_train, representation, device, args.batch_size)
    model = LinearDetector(mean, std).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        desc = f"{representation}: epoch {epoch}/{args.epochs}"
        loss = train_epoch(model, x_train, y_train, representation, optimizer, device, args.batch_size, generator, desc)
        val_accuracy, _ = evaluate(model, x_val, y_val, representation, device, args.batch_size)
        log(f"{representation}: epoch {epoch}: training loss {loss:.4f}, validation accuracy {val_accuracy:.2%}")
    return model, val_accuracy


def run_representation(args, splits, representation, device):
    """Statistics, training, test and figures for one representation; returns a result dict."""
    start = time.perf_counter()
    model, val_accuracy = fit_detector(args, splits, representation, device)
    synchronize(device)
    train_seconds = time.perf_counter() - start
    train_accuracy, train_confusion = evaluate(model, *splits["train"], representation, device, args.batch_size)
    test_accuracy, confusion = evaluate(model, *splits["test"], representation, device, args.batch_size)
    print(f"{representation}: training accuracy {format_accuracy(train_confusion, interval=False)}")
    print(f"{representation}: test accuracy {format_accuracy(confusion)}")
    print(f"{representation}: confusion matrix (rows: true class, columns: predicted)\n{format_confusion(confusion)}")
    means = write_figures(args, splits, representation, model, test_accuracy, device)
    return {
        "representation": representation,
        "train_accuracy": train_accuracy,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "test_interval": wilson_interval(confusion.trace().item(), confusion.sum().item()),
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


def fill_split_sizes(args, defaults):
    """Set args.train_size, val_size and test_size that are None to `defaults` (train, validation, test)."""
    for name, default in zip(("train_size", "val_size", "test_size"), defaults):
        if getattr(args, name, None) is None:
            setattr(args, name, default)


def run(args):
    """The whole task for parsed `args`; returns the list of result dicts, one per representation."""
    fill_split_sizes(args, util.FFHQ_SPLIT)
    args.data, args.eval_split = args.data or util.FFHQ_SOURCE_DIR, args.eval_split or "val"
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
        print(f"data: {relative(args.data)} ({describe_data(args.data, 'train', args.train_size)})")
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
        type=path_argument,
        default=None,
        help=f"folder holding {util.REAL_FOLDER}/ and {util.FAKE_FOLDER}/ (default: {relative(util.FFHQ_SOURCE_DIR)})",
    )
    for split, what, default, study in zip(
        ("train", "val", "test"), ("training", "validation", "test"), util.FFHQ_SPLIT, STUDY_SPLIT
    ):
        parser.add_argument(
            f"--{split}-size",
            type=int_range(1, 10_000_000),
            default=None,
            help=f"{what} images per source, 1-10000000 (default: {default}; {study} in the resampling study)",
        )
    add_training_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int_range(1, 1024),
        default=default_workers(),
        help=f"processes decoding images, 1-1024 (default: the cores this process may use, here {default_workers()})",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that are not 128x128 RGB PNG images and say how many (default: stop and name them)",
    )
    add_study_arguments(parser.add_argument_group("resampling study (see src/iml/resampling_study.py)"))
    add_common_arguments(parser, out_default=FIGURES_DIR)
    return parser


def add_study_arguments(group):
    """--resampling-study and its own options, --real, --fake and --allow-upscale."""
    group.add_argument(
        "--resampling-study",
        action="store_true",
        help="import --real and --fake once per pair of resizing filters and train and test on each",
    )
    group.add_argument("--real", type=path_argument, help="folder of real face pictures, any format and size")
    group.add_argument("--fake", type=path_argument, help="folder of generated face pictures, any format and size")
    group.add_argument(
        "--allow-upscale", action="store_true", help="enlarge pictures smaller than 128 px (default: refuse)"
    )


def add_training_arguments(parser):
    """The options of the detector and its training: --epochs, --batch-size, --lr, --weight-decay, ..."""
    for flag, kind, default, text in (
        ("--epochs", int_range(1, 1000), 5, "training epochs, 1-1000"),
        ("--batch-size", int_range(1, 100_000), 500, "batch size, 1-100000"),
        ("--lr", learning_rate, 1e-3, "Adam learning rate, above 0 to 1"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default:g})")
    parser.add_argument(
        "--weight-decay",
        type=weight_decay,
        default=WEIGHT_DECAY,
        help=f"L2 penalty on weights and bias, 0 to 1000 (default: {WEIGHT_DECAY:g}, the best on the validation split of "
        "../shared/data/faces; see docs/tasks.md)",
    )
    parser.add_argument(
        "--representation",
        choices=[*REPRESENTATIONS, "all"],
        default="fft",
        help="what the linear layer sees: fft (the exercise), dct, pixel, or all three in turn (default: fft)",
    )
    parser.add_argument(
        "--eval-split",
        choices=["val", "test"],
        default=None,
        help="split whose mean spectra are plotted (default: val)",
    )


def main():
    args = build_parser().parse_args()
    check_output_folder(args.out)
    check_output_outside(args.out, {"--data": args.data, "--real": args.real, "--fake": args.fake})
    if args.resampling_study:
        from iml import resampling_study  # it imports this module

        resampling_study.main(args)
        return
    if args.real or args.fake or args.allow_upscale:
        raise UserError(
            "--real, --fake and --allow-upscale belong to --resampling-study; to train on other pictures, import "
            f"them with `{IMPORT_COMMAND} --real DIR --fake DIR --out DIR` and pass --data DIR."
        )
    run(args)


if __name__ == "__main__":
    run_main(main)
