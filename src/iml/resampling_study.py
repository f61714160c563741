"""What does the linear detector of Task 3 really see? The same photographs, resized with different filters.

    python -m iml resampling-study --real ../shared/data/faces/real --fake ../shared/data/faces/fake

Both folders are imported once per pair of resampling filters in COMBINATIONS (ffhq_import), and
the exercise's detector (log |FFT2|, one nn.Linear; its fast twin, detector.py) is trained and tested on each import with
the same split and seed. Only the filter changes between rows, so any change of accuracy comes
from the filter, not from the faces or the generator. The control, reals by nearest and fakes by
Lanczos, swaps the roles: if the detector still wins, it has learnt the filter, not the fakes.
"""

import time
from pathlib import Path

import torch

from iml import ffhq_import
from iml.cli import (
    UserError,
    add_common_arguments,
    check_output_folder,
    check_output_outside,
    device_from_argument,
    path_argument,
)
from iml.common import printable, relative, scratch_folder, set_seed
from iml.deepfake_plots import format_study, plot_resampling_study
from iml.detector import (
    add_loading_arguments,
    add_split_arguments,
    add_training_arguments,
    class_means,
    command_parser,
    evaluate,
    fit_detector,
    wilson_interval,
)
from iml.face_cache import load_splits, place_cache
from iml.outputs import figure_set
from iml.progress import progress, write_line

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
STUDY_SPLIT = (150, 20, 30)  # training, validation, test images per class
SCRATCH_NAME = "iml-resampling-study"  # the imports go to TMPDIR/.iml-resampling-study.partial-<pid>@<host>-*


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
    means = class_means(images, labels, "fft", device, args.batch_size)  # (2, C, H, W)
    return {
        "real": real_resample,
        "fake": fake_resample,
        "train_per_class": args.train_size,
        "test_per_class": args.test_size,
        "train_accuracy": train_accuracy,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "test_interval": wilson_interval(confusion.trace().item(), confusion.sum().item()),
        "difference": (means[1] - means[0]).cpu(),
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
    temporary folder that is deleted afterwards, or by the next study if this one is killed.
    """
    rows = []
    with (
        scratch_folder(SCRATCH_NAME) as workdir,
        progress(total=len(combinations), unit="pairs", desc="resampling study, filter pairs") as bar,
    ):
        for real_resample, fake_resample in combinations:
            start = time.perf_counter()
            folder = Path(workdir) / f"{real_resample}-{fake_resample}"
            rows.append(study_combination(args, folder, real_resample, fake_resample, device))
            low, high = rows[-1]["test_interval"]
            write_line(
                f"reals by {real_resample}, fakes by {fake_resample}: test accuracy "
                f"{rows[-1]['test_accuracy']:.1%} ({low:.1%}-{high:.1%}) in {time.perf_counter() - start:.1f} s"
            )
            bar.update()
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
    with figure_set(args.out, "resampling-study"):
        path = plot_resampling_study(rows, data_label, args.out / STUDY_FIGURE)
    print(f"wrote {relative(path)}\ntotal {time.perf_counter() - start:.1f} s")
    return rows


def build_parser():
    """The command line of `python -m iml resampling-study`."""
    parser = command_parser("resampling-study", __doc__)
    parser.add_argument("--real", type=path_argument, help="folder of real face pictures, any format and size")
    parser.add_argument("--fake", type=path_argument, help="folder of generated face pictures, any format and size")
    parser.add_argument(
        "--allow-upscale", action="store_true", help="enlarge pictures smaller than 128 px (default: refuse)"
    )
    add_split_arguments(parser, STUDY_SPLIT)
    add_training_arguments(parser)
    add_loading_arguments(parser)
    add_common_arguments(parser, "resampling-study")
    return parser


def main(argv=None):
    """`python -m iml resampling-study --real DIR --fake DIR [OPTIONS]`: check the options and the output, then `run_study`."""
    args = build_parser().parse_args(argv)
    if args.real is None or args.fake is None:
        raise UserError("resampling-study needs --real DIR and --fake DIR, the folders of real and fake pictures.")
    check_output_folder(args.out)
    check_output_outside(args.out, {"--real": args.real, "--fake": args.fake})
    set_seed(args.seed)
    try:
        return run_study(args, device_from_argument(args.device))
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr and run again.") from None
