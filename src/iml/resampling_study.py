"""What does the linear detector of Task 3 really see? The same photographs, resized with different filters.

    python src/deepfake_interpretation.py --resampling-study \\
        --real ../shared/data/faces/real --fake ../shared/data/faces/fake

Both folders are imported once per pair of resampling filters in COMBINATIONS (ffhq_import), and
the exercise's detector (log |FFT2|, one nn.Linear) is trained and tested on each import with
the same split and seed. Only the filter changes between rows, so any change of accuracy comes
from the filter, not from the faces or the generator. The control, reals by nearest and fakes by
Lanczos, swaps the roles: if the detector still wins, it has learnt the filter, not the fakes.
"""

import tempfile
import time
from pathlib import Path

import torch

from deepfake_interpretation import (
    STUDY_SPLIT,
    class_means,
    evaluate,
    fill_split_sizes,
    fit_detector,
    mean_difference,
    wilson_interval,
)
from iml import ffhq_import
from iml.cli import UserError, device_from_argument
from iml.common import printable, relative
from iml.deepfake_plots import format_study, plot_resampling_study
from iml.face_cache import load_splits, place_cache

# (filter of the reals, filter of the fakes): the reals by Lanczos, the fakes by every filter
# from the cleanest to the most aliased, then the control with the roles swapped
COMBINATIONS = (
    ("lanczos", "lanczos"),
    ("lanczos", "bicubic"),
    ("lanczos", "bilinear"),
    ("lanczos", "nearest"),
    ("nearest", "lanczos"),
)
STUDY_FIGURE = "deepfake_resampling_study.png"


def study_combination(args, folder, real_resample, fake_resample, device):
    """Import `args.real` and `args.fake` into `folder` with the two filters, train and test; returns a row dict.

    The row holds the filters, images per class in each split, training, validation and test
    accuracy, the test accuracy's 95 % Wilson interval and the mean log-spectrum difference,
    fake - real, over all imported images (C, H, W).
    """
    rows = ffhq_import.import_faces(
        args.real,
        args.fake,
        folder,
        real_resample=real_resample,
        fake_resample=fake_resample,
        allow_upscale=args.allow_upscale,
        skip_unreadable=args.skip_unreadable,
        workers=args.workers,
    )
    for label, source in (("real", args.real), ("fake", args.fake)):  # after unreadable ones were left out
        check_enough(args, relative(source), sum(row["class"] == label for row in rows), "readable pictures")
    splits = load_splits(folder, args.train_size, args.val_size, args.test_size, args.workers)
    splits = {name: (place_cache(x, device), y.to(device)) for name, (x, y) in splits.items()}
    model, val_accuracy = fit_detector(args, splits, "fft", device, log=lambda line: None)
    train_accuracy, _ = evaluate(model, *splits["train"], "fft", device, args.batch_size)
    test_accuracy, confusion = evaluate(model, *splits["test"], "fft", device, args.batch_size)
    images = torch.cat([x for x, _ in splits.values()])  # (N, 128, 128, 3), every imported image once
    labels = torch.cat([y for _, y in splits.values()])
    return {
        "real": real_resample,
        "fake": fake_resample,
        "train_per_class": args.train_size,
        "test_per_class": args.test_size,
        "train_accuracy": train_accuracy,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "test_interval": wilson_interval(confusion.trace().item(), confusion.sum().item()),
        "difference": mean_difference(class_means(images, labels, "fft", device, args.batch_size)).cpu(),
    }


def check_enough(args, shown, count, what):
    """Raise UserError when a folder (named `shown`) holds `count` `what` ("files", "readable pictures"),
    fewer than the study's split needs per class."""
    needed = args.train_size + args.val_size + args.test_size
    if count < needed:
        raise UserError(
            f"{shown} holds {count} {what}, fewer than the {needed} per class of the study's split "
            f"(--train-size {args.train_size} + --val-size {args.val_size} + --test-size {args.test_size}); "
            "ask for fewer."
        )


def resampling_study(args, device, combinations=COMBINATIONS):
    """Run `study_combination` for every (real filter, fake filter) pair; returns the rows.

    args: real, fake (folders of pictures), train_size, val_size, test_size (images per class),
    skip_unreadable, workers, and the training settings of `fit_detector`. The imports go to a
    temporary folder that is deleted afterwards.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="resampling-study-") as workdir:
        for real_resample, fake_resample in combinations:
            start = time.perf_counter()
            folder = Path(workdir) / f"{real_resample}-{fake_resample}"
            rows.append(study_combination(args, folder, real_resample, fake_resample, device))
            low, high = rows[-1]["test_interval"]
            print(
                f"reals by {real_resample}, fakes by {fake_resample}: test accuracy "
                f"{rows[-1]['test_accuracy']:.1%} ({low:.1%}-{high:.1%}) in {time.perf_counter() - start:.1f} s",
                flush=True,
            )
    return rows


def run_study(args, device):
    """The study for parsed command-line `args`: the table on stdout and the figure in args.out; returns the rows.

    Raises cli.UserError when a folder holds fewer files than the split needs.
    """
    for folder in (args.real, args.fake):
        check_enough(args, folder, len(ffhq_import.list_sources(folder)), "files")
    print(
        f"resampling study: {printable(args.real)} (real) and {printable(args.fake)} (fake), "
        f"{args.train_size} / {args.val_size} / {args.test_size} images per class for training / validation / test, "
        f"log |FFT2| and one linear layer, seed {args.seed}"
    )
    start = time.perf_counter()
    rows = resampling_study(args, device)
    print("\n" + format_study(rows))
    needed = args.train_size + args.val_size + args.test_size
    data_label = f"{needed} pictures per class from {printable(args.real)} (real) and {printable(args.fake)} (fake)"
    path = plot_resampling_study(rows, data_label, args.out / STUDY_FIGURE)
    print(f"wrote {relative(path)}\ntotal {time.perf_counter() - start:.1f} s")
    return rows


def main(args):
    """`deepfake_interpretation.py --resampling-study`: check the options that belong to it, then `run_study`."""
    if args.real is None or args.fake is None:
        raise UserError("--resampling-study needs --real DIR and --fake DIR, the folders of real and fake pictures.")
    if args.representation != "fft" or args.data is not None or args.eval_split is not None:
        raise UserError(
            "--resampling-study imports --real and --fake and trains on log |FFT2|; leave out "
            "--data, --representation and --eval-split."
        )
    fill_split_sizes(args, STUDY_SPLIT)
    try:
        run_study(args, device_from_argument(args.device))
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr and run again.") from None
