"""``python -m iml ig``: Task 2's Integrated Gradients beyond the exercise, with the fast twin.

    python -m iml ig                                              # 100 test digits, m = 300, black baseline
    python -m iml ig --digit 3 --rule gausslegendre --steps 32 --baseline blur
    python -m iml ig --baseline noise --smoothgrad 16 --num-images 20 --steps 50
    python -m iml ig --precision bfloat16 --compile --num-images 2000

Other baselines x' (a blur of the input, uniform noise averaged over draws), other integration
rules (left, midpoint, trapezoid, Gauss-Legendre), SmoothGrad, bfloat16 autocast, torch.compile
and the chunk size. It prints the speed and the completeness gap and draws the first digits'
maps (outputs/ig/ig_maps.png). The exercise's own run is `python src/mnist_integrated.py`.
"""

import argparse
import time

import torch

from iml.attribution import (
    BASELINES,
    BLUR_SIGMA,
    CPU_BATCH_POINTS,
    GPU_BATCH_POINTS,
    completeness_gap,
    make_baselines,
    smooth_grad,
)
from iml.cli import (
    UserError,
    add_common_arguments,
    check_output_folder,
    device_from_argument,
    digit,
    float_range,
    int_range,
    path_argument,
)
from iml.common import WEIGHTS_PATH, relative, set_seed, synchronize
from iml.integrated_checks import integrated_gradients_averaged, report_precision
from iml.integrated_fast import CompileError
from iml.integrated_plots import plot_maps
from iml.mnist_cnn import evaluate, load_test_digits, load_trained, predict
from iml.outputs import figure_set, save_figure
from iml.progress import progress
from iml.quadrature import RULES, quadrature

NAME = "ig"


def add_digit_arguments(parser, num_images, steps=None):
    """--weights, --digit, --num-images and (unless `steps` is None) --steps, with these defaults."""
    parser.add_argument(
        "--weights",
        type=path_argument,
        default=WEIGHTS_PATH,
        help=f"the CNN's weights, written by src/mnist_integrated.py (default: {relative(WEIGHTS_PATH)})",
    )
    parser.add_argument(
        "--digit",
        type=digit,
        default=None,
        help="explain only test digits of this class, for this output (default: the first test digits, "
        "each for its predicted class)",
    )
    parser.add_argument(
        "--num-images",
        type=int_range(1, 10_000),
        default=num_images,
        help=f"test digits to explain, 1-10000 (default: {num_images})",
    )
    if steps is not None:
        parser.add_argument(
            "--steps", type=int_range(1, 100_000), default=steps, help=f"summation steps m, 1-100000 (default: {steps})"
        )


def add_speed_arguments(parser):
    """--batch-points, which bounds the memory of the fast twin."""
    parser.add_argument(
        "--batch-points",
        type=int_range(1, 100_000_000),
        default=None,
        help="path points (image x step) evaluated at once, 1-100000000; bounds the memory "
        f"(default: {CPU_BATCH_POINTS} on a CPU, {GPU_BATCH_POINTS} on a GPU)",
    )


def explained_digits(args):
    """(model, images (N, 1, 28, 28), labels (N,), digits (N,)): the CNN and the test digits to explain.

    Checks --out (and --rule with --steps, where the command has them) before any work, chooses the
    device and sets the seed, then prints the test accuracy. Without --digit, the first --num-images
    test digits, each explained for its predicted class; with it, the first test digits of that class.
    """
    check_output_folder(args.out)
    if hasattr(args, "rule"):
        quadrature(args.rule, args.steps)  # the trapezoid rule needs two steps: refused before any work
    device = device_from_argument(args.device)
    set_seed(args.seed)
    model = load_trained(args.weights, device)
    images, labels = load_test_digits(device)
    predictions = predict(model, images)
    print(f"test accuracy {evaluate(model, images, labels):.2%} on {len(labels)} test digits")
    if args.digit is None:
        index = torch.arange(min(args.num_images, len(images)), device=device)
        return model, images[index], labels[index].cpu(), predictions[index]
    index = torch.nonzero(labels == args.digit).flatten()[: args.num_images]
    return model, images[index], labels[index].cpu(), torch.full((len(index),), args.digit, device=device)


def command_parser(name, doc, num_images, steps=None, *adders):
    """The parser of an IG command: its digits, then each of `adders`' options, speed, seed, device and --out."""
    parser = argparse.ArgumentParser(
        prog=f"python -m iml {name}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_digit_arguments(parser, num_images=num_images, steps=steps)
    for add in adders:
        add(parser)
    add_speed_arguments(parser)
    add_common_arguments(parser, name)
    return parser


def build_parser():
    return command_parser(NAME, __doc__, 100, 300, add_method_arguments, add_precision_arguments)


def add_precision_arguments(parser):
    """--precision and --compile: the same attributions, faster."""
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16 runs the network under autocast: faster on recent GPUs, less exact (default: float32)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the path evaluation with torch.compile, which fuses its element-wise work: "
        "about 1.5x faster on a CPU after a one-off compile of 5-30 s; needs a C++ compiler "
        "(CPU) or Triton (GPU) (default: off)",
    )


def add_method_arguments(parser):
    """--rule, --baseline and its --noise-draws, --smoothgrad and its --smoothgrad-sigma."""
    parser.add_argument(
        "--rule", choices=RULES, default="right", help="integration rule (default: right, the exercise's sum)"
    )
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        default="black",
        help=f"black image, Gaussian blur (sigma {BLUR_SIGMA} px) of the input, or uniform noise (default: black)",
    )
    parser.add_argument(
        "--noise-draws",
        type=int_range(1, 1000),
        default=8,
        help="noise baselines averaged over with --baseline noise, 1-1000 (default: 8)",
    )
    parser.add_argument(
        "--smoothgrad",
        type=int_range(0, 1000),
        default=0,
        help="average IG over this many noisy copies of each input, 0-1000, 0 = off (default: 0)",
    )
    parser.add_argument(
        "--smoothgrad-sigma",
        type=float_range(0, 10, low_open=True),
        default=0.15,
        help="standard deviation of the SmoothGrad noise in pixel units, above 0 to 10 (default: 0.15)",
    )


def describe(args):
    """The IG settings in words, for titles and log lines."""
    described = f"{args.baseline} baseline, m = {args.steps}, {args.rule} rule"
    if args.baseline == "noise":
        described = f"uniform-noise baseline ({args.noise_draws} draws), m = {args.steps}, {args.rule} rule"
    if args.smoothgrad:
        described += f", SmoothGrad {args.smoothgrad} x sigma {args.smoothgrad_sigma}"
    if args.precision != "float32":
        described += f", {args.precision} autocast"
    return described


def explain(args, model, images, digits):
    """IG of `images` as the options say, timed and reported; returns (baselines, attributions)."""
    generator = torch.Generator().manual_seed(args.seed)
    baselines = make_baselines(args.baseline, images.cpu(), args.noise_draws, generator).to(images.device)
    options = {name: getattr(args, name) for name in ("rule", "batch_points", "precision", "compile")}
    options["steps_m"] = args.steps

    def attribute(x):
        return integrated_gradients_averaged(model, x, digits, baselines, **options, progress=bar)

    points = len(images) * args.steps * (args.noise_draws if args.baseline == "noise" else 1) * max(1, args.smoothgrad)
    synchronize(images.device)
    start = time.perf_counter()
    try:
        with progress(total=points, unit="points", desc="Integrated Gradients, path points") as bar:
            if args.smoothgrad:
                attributions = smooth_grad(attribute, images, args.smoothgrad, args.smoothgrad_sigma, generator)
            else:
                attributions = attribute(images)
    except CompileError as error:
        raise UserError(f"{error}: install one, or run without --compile.") from None
    synchronize(images.device)
    seconds = time.perf_counter() - start
    print(
        f"Integrated Gradients ({describe(args)}) for {len(images)} test digits: {points:,} path points "
        f"in {seconds:.1f} s ({points / seconds:,.0f} points/s) on {images.device}"
        + (", including the one-off torch.compile" if args.compile else "")
    )
    if args.precision != "float32":
        # plain IG was just computed; with SmoothGrad the inputs were noisy, so compute it anew
        report_precision(model, images, digits, baselines, options, None if args.smoothgrad else attributions)
    return baselines, attributions


def report_completeness(args, model, images, digits, baselines, attributions):
    """Print the completeness gap per image, absolute and relative to |F(x) - F(x')|."""
    gap = completeness_gap(model, images, attributions, digits, baselines)
    change = gap - attributions.flatten(1).sum(1)  # -(F(x) - F(x'))
    relative_gap = (gap.abs() / change.abs()).cpu()
    print(
        f"completeness, sum of attributions - (F(x) - F(x')) per image: median |gap| {gap.abs().median():.2e}, "
        f"max {gap.abs().max():.2e}; relative to |F(x) - F(x')|: median {relative_gap.median():.2%}, "
        f"max {relative_gap.max():.2%}"
        + (" (SmoothGrad adds noise to x, so this is not expected to be 0)" if args.smoothgrad else "")
    )


def main(argv=None):
    """Run ``python -m iml ig`` with the options `argv`."""
    args = build_parser().parse_args(argv)
    model, images, labels, digits = explained_digits(args)
    baselines, attributions = explain(args, model, images, digits)
    report_completeness(args, model, images, digits, baselines, attributions)
    title = f"Integrated Gradients ({describe(args)}), MNIST test digits"
    with figure_set(args.out, NAME) as written:
        save_figure(plot_maps(images.cpu(), attributions.cpu(), labels, digits.cpu(), title), args.out / "ig_maps.png")
    print(f"wrote {relative(written[0])}")
