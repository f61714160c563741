"""The fast twin of Task 3's detector: `python src/deepfake_interpretation.py --fast`, and the engine of
`python -m iml deepfake-representations` and `python -m iml resampling-study`.

The exercise's path (src/deepfake_interpretation.py) decodes the images one by one, runs the numpy
`transform` on every image once and keeps the spectra in memory. This twin keeps the uint8 images
(decoded by worker processes, face_cache.py) and computes the spectra batch by batch in torch on
any device (spectra.log_fft), streaming the training statistics (util.WelfordEstimator): memory
grows with the images, not with their float spectra, which is what the full 140,000-image split
needs. The same seed gives the same initial weights and the same order of batches as the
exercise's path; tests/test_deepfake_interpretation.py checks that both reach the same accuracy.
"""

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

import util
from iml.cli import (
    STANDIN_COMMAND,
    check_output_folder,
    check_output_outside,
    device_from_argument,
    int_range,
    learning_rate,
    path_argument,
    weight_decay,
)
from iml.common import default_workers, relative
from iml.deepfake_checks import (
    check_detect,
    check_image_splits,
    check_options_present,
    check_training_options,
    check_two_classes,
)
from iml.deepfake_plots import describe_data, format_confusion
from iml.face_cache import check_data_folder, load_splits, place_cache
from iml.progress import progress
from iml.spectra import REPRESENTATIONS, feature_batches, standardization
from iml.validation import (
    check_choice,
    check_count,
    check_device,
    check_labels,
    check_number,
    check_same_shape,
    check_tensor,
)

WEIGHT_DECAY = 30.0  # chosen on the shared faces: bench/select_weight_decay.py


class LinearDetector(nn.Module):
    """The exercise's classifier: one nn.Linear on standardized coefficients; logits (N, 2) for (real, fake).

    The training split's per-coefficient mean and std are buffers, so the model takes the
    representation as it comes (N, C, H, W) and a checkpoint carries its own standardization.
    """

    def __init__(self, mean, std):
        check_tensor(mean, "mean", "LinearDetector", ("C", "H", "W"))
        check_same_shape(std, "std", mean, "mean", "LinearDetector")
        super().__init__()
        self.register_buffer("mean", mean.float())  # (C, H, W)
        # a coefficient that never varies carries no information; don't divide by zero
        self.register_buffer("std", std.float().clamp_min(1e-6))
        self.linear = nn.Linear(mean.numel(), 2)

    def forward(self, features):
        """Logits (N, 2) for features (N, C, H, W) of the representation the detector was trained on."""
        check_tensor(features, "features", "LinearDetector", ("N", *self.mean.shape))
        # linear((x - mean) / std), with the standardization folded into the weights and bias:
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
    check_labels(labels, len(images), "class_means", 2)
    check_two_classes(labels, "class_means")
    sums, counts = None, torch.zeros(2, dtype=torch.float64, device=device)
    labels = labels.to(device)
    for index, features in feature_batches(
        images, representation, device, batch_size, desc=f"{representation}: class means"
    ):
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
    check_labels(labels, len(images), "train_epoch", 2)
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    total, count = 0.0, 0
    batches = feature_batches(images, representation, device, batch_size, order)
    bar = progress(batches, total=math.ceil(len(images) / batch_size), unit="batches", desc=desc, leave=False)
    for step, (index, features) in enumerate(bar):
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
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return (total / count).item()


@torch.no_grad()
def evaluate(model, images, labels, representation, device, batch_size):
    """(accuracy, confusion matrix (2, 2) int64: rows the true class, columns the predicted one)."""
    check_labels(labels, len(images), "evaluate", 2)
    if not len(images):
        raise ValueError("evaluate needs at least one image, got none")
    model.eval()
    confusion = torch.zeros(2, 2, dtype=torch.int64, device=device)
    labels = labels.to(device)
    for index, features in feature_batches(
        images, representation, device, batch_size, desc=f"{representation}: evaluating"
    ):
        predicted = model(features).argmax(dim=1)
        confusion += torch.bincount(labels[index] * 2 + predicted, minlength=4).reshape(2, 2)
    confusion = confusion.cpu()
    return (confusion.trace() / confusion.sum()).item(), confusion


def wilson_interval(correct, total, z=1.959964):
    """The 95 % Wilson score interval (low, high) of a proportion `correct` / `total` (Wilson 1927).

    Unlike p ± z·sqrt(p(1 - p)/n) it stays in [0, 1] and is not empty at p = 0 or 1: 60 of 60 gives
    (0.940, 1.0). E. B. Wilson, J. Am. Stat. Assoc. 22 (1927) 209-212. `correct` and `total` are whole numbers
    (TypeError otherwise); ValueError unless 0 <= correct <= total and total >= 1.
    """
    if torch.is_tensor(correct) or torch.is_tensor(total):
        raise TypeError(
            "wilson_interval needs correct and total as ints, got a tensor; confusion.trace().item() makes one"
        )
    total = check_count(total, "total", "wilson_interval")
    if total > 2**53:  # beyond, a float no longer holds every count
        raise ValueError(f"wilson_interval needs total of at most 2**53, got a number of {len(str(total))} digits")
    if check_count(correct, "correct", "wilson_interval", low=0) > total:
        raise ValueError(f"wilson_interval needs correct from 0 to total, got {correct:.3g} of {total}")
    check_number(z, "z", "wilson_interval", above=0)
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


def format_report(train_confusion, test_confusion, prefix=""):
    """Training and test accuracy (the test's with its 95 % interval) and the test's confusion matrix, as text;
    `prefix` starts the first three lines."""
    return (
        f"{prefix}training accuracy {format_accuracy(train_confusion, interval=False)}\n"
        f"{prefix}test accuracy {format_accuracy(test_confusion)}\n"
        f"{prefix}confusion matrix (rows: true class, columns: predicted)\n{format_confusion(test_confusion)}"
    )


def fit_detector(args, splits, representation, device, log=print):
    """Standardize on the training split, then train a LinearDetector for args.epochs with Adam.

    args: lr, weight_decay (an L2 penalty, Adam's coupled form), epochs, batch_size and seed.
    `log` receives one line per epoch. Returns (model, validation accuracy after the last epoch).
    """
    check_training_options(args, "fit_detector")
    check_choice(representation, "representation", "fit_detector", tuple(REPRESENTATIONS))
    device = check_device(device, "fit_detector")
    (x_train, y_train), (x_val, y_val) = check_image_splits(splits, "fit_detector", ("train", "val"))
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


def load_placed_splits(args, device):
    """Decode args.data's three splits with args.workers processes into one uint8 cache, placed on `device`.

    Returns {"train"|"val"|"test": (images (N, 128, 128, 3), labels (N,))} and prints how long decoding took.
    """
    start = time.perf_counter()
    sizes = (args.train_size, args.val_size, args.test_size)
    splits = load_splits(args.data, *sizes, args.workers, args.skip_unreadable)
    seconds = time.perf_counter() - start
    total = sum(len(x) for x, _ in splits.values())
    print(
        f"decoded {total:,} images ({args.train_size:,} / {args.val_size:,} / {args.test_size:,} per source for "
        f"train / validation / test) with {args.workers} workers in {seconds:.1f} s "
        f"({total / seconds:,.0f} images/s); device {device}"
    )
    return {name: (place_cache(x, device), y.to(device)) for name, (x, y) in splits.items()}, seconds


def fit_fast(args, device):
    """The twin of the exercise's run on log |FFT2|: the same split, seed and training, computed in batches.

    args: data, the split sizes, workers, skip_unreadable, eval_split and the training settings.
    Returns what src/deepfake_interpretation.py reports and draws: {"means" (2, C, H, W) and
    "difference" (C, H, W) of args.eval_split, "weights" (2, C, H, W), "train" and "test" confusion
    matrices (2, 2)}, and "model", the LinearDetector.
    """
    check_options_present(args, ["workers"], "fit_fast")
    check_count(args.workers, "args.workers", "fit_fast", high=1024)  # the command line's bound
    device = check_detect(args, device, "fit_fast")
    splits, _ = load_placed_splits(args, device)
    model, _ = fit_detector(args, splits, "fft", device, log=lambda line: print(line.removeprefix("fft: ")))
    means = class_means(*splits[args.eval_split], "fft", device, args.batch_size).cpu()  # (2, C, H, W)
    return {
        "means": means,
        "difference": means[1] - means[0],
        "weights": model.weight_maps().cpu(),
        "train": evaluate(model, *splits["train"], "fft", device, args.batch_size)[1],
        "test": evaluate(model, *splits["test"], "fft", device, args.batch_size)[1],
        "model": model,
    }


def command_parser(name, doc):
    """The argparse parser of `python -m iml NAME`, its --help opening with the module's `doc`."""
    import argparse

    return argparse.ArgumentParser(
        prog=f"python -m iml {name}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_data_arguments(parser, defaults, note=""):
    """--data, --train-size, --val-size, --test-size (`defaults`, images per source) and --eval-split."""
    parser.add_argument(
        "--data",
        type=path_argument,
        default=util.FFHQ_SOURCE_DIR,
        help=f"folder holding {util.REAL_FOLDER}/ and {util.FAKE_FOLDER}/ (default: {relative(util.FFHQ_SOURCE_DIR)})",
    )
    add_split_arguments(parser, defaults, note)
    parser.add_argument(
        "--eval-split",
        choices=["val", "test"],
        default="val",
        help="split whose mean spectra are plotted (default: val)",
    )
    add_loading_arguments(parser)


def add_split_arguments(parser, defaults, note=""):
    """--train-size, --val-size and --test-size (images per source), with their `defaults`."""
    for split, what, default in zip(("train", "val", "test"), ("training", "validation", "test"), defaults):
        parser.add_argument(
            f"--{split}-size",
            type=int_range(1, 10_000_000),
            default=default,
            help=f"{what} images per source, 1-10000000 (default: {default}{note})",
        )


def add_training_arguments(parser):
    """The options of the detector and its training: --epochs, --batch-size, --lr, --weight-decay."""
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
        help=f"L2 penalty on weights and bias, 0 to 1000 (default: {WEIGHT_DECAY:g}, the best on the validation "
        "split of ../shared/data/faces; see docs/tasks.md)",
    )


def add_loading_arguments(parser):
    """--workers and --skip-unreadable: how the images are decoded."""
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


def say_data(data, describe):
    """Print which data a run uses; the stand-in always says it is synthetic. `describe`: its description."""
    if util.is_standin(data):
        print(
            f"data: {relative(data)} is the SYNTHETIC STAND-IN made by `{STANDIN_COMMAND}`, "
            "not FFHQ/StyleGAN; its accuracies say nothing about real deepfakes."
        )
    else:
        print(f"data: {relative(data)} ({describe})")


def prepare_run(args):
    """Refuse, before any work, an output folder that cannot be written or lies in --data, and missing data.

    args: out, data, device, train_size and eval_split (with its *_size). Prints which data is used.
    Returns (device, the eval split's description, the training split's) for titles and logs.
    """
    check_output_folder(args.out)
    check_output_outside(args.out, {"--data": args.data})
    check_data_folder(args.data)
    device = device_from_argument(args.device)
    say_data(args.data, describe_data(args.data, "train", args.train_size))
    shown = describe_data(args.data, args.eval_split, 2 * getattr(args, f"{args.eval_split}_size"))
    return device, shown, describe_data(args.data, "train", 2 * args.train_size)
