"""The data commands of `python -m iml`: fetching, making and importing the tasks' data.

    python -m iml mnist            # fetch MNIST into data/MNIST/raw and print its counts
    python -m iml ffhq-download    # fetch FFHQ/StyleGAN (4.2 GB) into data/ffhq_style_gan
    python -m iml ffhq-standin     # a synthetic stand-in in the same layout, offline
    python -m iml ffhq-import --real DIR --fake DIR --out data/faces
                                   # any face pictures into the same layout
    python -m iml ffhq-examples    # outputs/ffhq-examples/real.png and fake.png from the data present

The loading itself is in util.py, mnist_data.py, download.py, standin.py and ffhq_import.py; this
module only turns flags into their calls.
"""

import argparse
import time
from pathlib import Path

import numpy as np

import util
from iml import download
from iml.cli import STANDIN_COMMAND, add_out_argument, check_output_folder, int_range, path_argument, random_seed
from iml.common import DATA_DIR, MNIST_RAW_DIR, InputError, default_workers, relative
from iml.ffhq_import import RESAMPLING, import_faces
from iml.outputs import figure_set
from util import (
    FAKE_FOLDER,
    FFHQ_DIR,
    FFHQ_IMAGES_PER_FOLDER,
    FFHQ_SOURCE_DIR,
    FFHQ_STANDIN_DIR,
    IMAGE_SIZE,
    REAL_FOLDER,
)


def add_import_arguments(parser):
    """The options of `ffhq-import` (see ffhq_import.import_faces)."""
    filters = ", ".join(RESAMPLING)
    for flag, text in (
        ("--real", "folder of real face pictures (any format and size)"),
        ("--fake", "folder of generated face pictures"),
        ("--out", "folder to write, with A_ffhq/, B_stylegan/, MANIFEST.csv"),
    ):
        parser.add_argument(flag, type=path_argument, required=True, help=text)
    parser.add_argument(
        "--size",
        type=int_range(8, 4096),
        default=IMAGE_SIZE,
        help=f"side in pixels, 8-4096 (default: {IMAGE_SIZE}, the exercise's)",
    )
    parser.add_argument(
        "--resample",
        choices=list(RESAMPLING),
        default="lanczos",
        help=f"resizing filter of both classes: {filters} (default: lanczos)",
    )
    for label in ("real", "fake"):
        parser.add_argument(
            f"--{label}-resample",
            choices=list(RESAMPLING),
            help=f"filter of the {label} pictures only (default: --resample)",
        )
    for flag, text in (
        ("--allow-upscale", "enlarge pictures smaller than --size (default: refuse them)"),
        ("--skip-unreadable", "leave out files Pillow cannot decode and say how many (default: stop and name them)"),
        ("--force", "replace an existing --out folder (default: refuse)"),
    ):
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument(
        "--workers",
        type=int_range(1, 1024),
        default=default_workers(),
        help=f"worker processes, 1-1024 (default: the cores this process may use, here {default_workers()})",
    )


def import_command(args):
    """`ffhq-import`: import_faces with the parsed options, then one line of what was written."""
    real, fake = args.real_resample or args.resample, args.fake_resample or args.resample
    rows = import_faces(
        args.real,
        args.fake,
        args.out,
        args.size,
        real,
        fake,
        args.allow_upscale,
        args.skip_unreadable,
        args.force,
        args.workers,
    )
    counts = [sum(row["class"] == label for row in rows) for label in ("real", "fake")]
    print(
        f"wrote {counts[0]} real ({real}) and {counts[1]} fake ({fake}) {args.size}x{args.size} PNG images "
        f"and MANIFEST.csv into {relative(args.out)}"
    )
    if args.size != IMAGE_SIZE:
        print(
            f"note: Task 3 reads {IMAGE_SIZE}x{IMAGE_SIZE} images; import with --size {IMAGE_SIZE} to train on these."
        )


def add_standin_arguments(parser):
    """The options of `ffhq-standin` (see standin.make_standin)."""
    parser.add_argument(
        "--out",
        type=path_argument,
        default=FFHQ_STANDIN_DIR,
        help=f"folder to write (default: {relative(FFHQ_STANDIN_DIR)})",
    )
    parser.add_argument(
        "--per-class",
        type=int_range(1, 10_000_000),
        default=FFHQ_IMAGES_PER_FOLDER,
        help="images per folder, 1-10000000 (default: 70000)",
    )
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--workers", type=int_range(1, 1024), default=None, help="worker processes, 1-1024 (default: one per CPU core)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder (default: refuse)")


def ffhq_source(path=None):
    """The folder holding A_ffhq and B_stylegan: `path` if given, else the real data, else the stand-in."""
    if path is not None:
        return Path(path)
    for candidate in (FFHQ_SOURCE_DIR, FFHQ_STANDIN_DIR):
        if (candidate / REAL_FOLDER).is_dir():
            return candidate
    raise InputError(f"neither {relative(FFHQ_SOURCE_DIR)} nor {relative(FFHQ_STANDIN_DIR)} exists", hint="ffhq-none")


def build_parser():
    """The data command line: mnist, ffhq-download, ffhq-standin, ffhq-import and ffhq-examples.

    `python -m iml NAME ...` calls `main([NAME, ...])`, so each command's usage reads `python -m iml NAME`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m iml", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("mnist", help="fetch MNIST into data/MNIST/raw and print its counts")
    commands.add_parser("ffhq-download", help=f"download, extract and verify FFHQ/StyleGAN into {relative(FFHQ_DIR)}")
    add_standin_arguments(
        commands.add_parser("ffhq-standin", help="write a synthetic stand-in dataset in the FFHQ/StyleGAN layout")
    )
    add_import_arguments(
        commands.add_parser("ffhq-import", help="import any face pictures into the FFHQ/StyleGAN layout")
    )
    examples = commands.add_parser("ffhq-examples", help="real.png and fake.png, one face of each folder")
    examples.add_argument(
        "--data",
        type=path_argument,
        default=None,
        help=f"folder holding {REAL_FOLDER}/ and {FAKE_FOLDER}/ (default: {relative(FFHQ_SOURCE_DIR)}, "
        f"else {relative(FFHQ_STANDIN_DIR)})",
    )
    examples.add_argument(
        "--index", type=int_range(0, 10_000_000), default=0, help="which image of each folder, 0-10000000 (default: 0)"
    )
    add_out_argument(examples, "ffhq-examples")
    return parser


def main(argv=None):
    """Run one data command: `argv` is its name and options (default: sys.argv[1:])."""
    args = build_parser().parse_args(argv)
    if getattr(args, "out", None) is not None:  # every command that writes a folder: check it before any work
        check_output_folder(args.out)
    # standin and deepfake_plots (matplotlib) are imported only by the command that needs them
    if args.command == "mnist":
        train_images, _ = util.get_mnist_train_data()
        test_images, test_labels = util.get_mnist_test_data()
        print(f"MNIST in {relative(MNIST_RAW_DIR)}: {len(train_images)} training and {len(test_images)} test digits")
        print("test label counts:", np.bincount(test_labels.numpy(), minlength=10).tolist())
    elif args.command == "ffhq-download":
        source = download.download_ffhq(DATA_DIR, download.verify_ffhq)
        print(
            f"FFHQ/StyleGAN in {relative(source)}: {FFHQ_IMAGES_PER_FOLDER} images in each of {REAL_FOLDER}/ and {FAKE_FOLDER}/"
        )
        if (zip_path := DATA_DIR / f"{download.FFHQ_NAME}.zip").exists():
            print(f"{relative(zip_path)} is no longer needed and may be deleted.")
    elif args.command == "ffhq-standin":
        from iml.standin import make_standin

        start = time.perf_counter()
        made_by = f"{STANDIN_COMMAND} --out {relative(args.out)} --per-class {args.per_class} --seed {args.seed}"
        out = make_standin(args.out, args.per_class, args.seed, args.workers, args.force, provenance=made_by)
        rate = 2 * args.per_class / (time.perf_counter() - start)
        print(
            f"stand-in data (synthetic, not FFHQ) in {relative(out)}: {args.per_class} image{'s' * (args.per_class != 1)} in each of "
            f"{REAL_FOLDER}/ and {FAKE_FOLDER}/, {rate:.0f} images/s"
        )
    elif args.command == "ffhq-import":
        import_command(args)
    elif args.command == "ffhq-examples":
        from iml.deepfake_plots import plot_examples

        source = ffhq_source(args.data)
        with figure_set(args.out, "ffhq-examples") as written:
            plot_examples(source, args.out, args.index)
        for path in written:
            print(f"wrote {relative(path)}" + (" (stand-in data)" if util.is_standin(source) else ""))
