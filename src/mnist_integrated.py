"""Task 2: train the MNIST digit CNN, then explain its decisions with Integrated Gradients.

    python src/mnist_integrated.py                      # load data/weights.pth (train if missing), explain
    python src/mnist_integrated.py --retrain            # train anew, replace data/weights.pth, explain
    python src/mnist_integrated.py --retrain --val-size 0 --epochs 4 --train-only   # the shipped weights
    python src/mnist_integrated.py --digit 3 --rule gausslegendre --steps 32 --baseline blur
    python src/mnist_integrated.py --baseline noise --smoothgrad 16 --num-images 20 --steps 50 --skip-checks
    python src/mnist_integrated.py --compile --num-images 2000    # torch.compile: faster for large runs
    sbatch scripts/integrated_gradients.slurm           # the same on a SLURM GPU node

Training holds out `--val-size` training digits for validation (reported every epoch); the test
accuracy on the 10,000 test digits is measured once at the end and stored in the checkpoint.

Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365) attributes the output F of one
digit neuron to the pixels x_i of an input x, relative to a baseline x' (a black image by default):

    IntegratedGrads_i(x) = (x_i - x'_i) * (1/m) * sum_{k=1..m} dF(x' + k/m * (x - x'))/dx_i

`integrate_gradients` below is that formula; the script runs `integrated_fast.integrate_gradients_fast`,
which gives the same numbers faster. The attributions add up to F(x) - F(x') (completeness) as m
grows; the script reports how close they come, compares integration rules and baselines, and
checks the maps with two sanity tests (src/iml/attribution.py). Figures go to figures/.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.func import functional_call, grad, vmap

from iml.attribution import (
    BASELINES,
    BLUR_SIGMA,
    as_baseline,
    completeness_gap,
    make_baselines,
    output_digits,
    require_eval_mode,
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
    learning_rate,
    path_argument,
    run_main,
    similar_file,
)
from iml.common import WEIGHTS_PATH, atomic_path, relative, save_figure, set_seed, synchronize
from iml.integrated_checks import integrated_gradients_averaged, report_precision, run_checks
from iml.integrated_fast import CPU_BATCH_POINTS, GPU_BATCH_POINTS, CompileError
from iml.integrated_plots import plot_attributions, plot_class_means
from iml.quadrature import RULES, quadrature
from iml.training import batches, evaluate, mnist_splits, to_float_images, train_model
from models import functional_state, load_cnn, save_checkpoint
from util import get_mnist_test_data


def integrate_gradients(net, images, output_digit, steps_m=300, baseline=None, rule="right"):
    """Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365), written as the formula:

        attributions_i = (x_i - x'_i) * sum_k w_k dF(x' + alpha_k (x - x'))/dx_i

    with the nodes alpha_k and weights w_k of `rule` (quadrature.RULES); for "right" they are
    k/m and 1/m, k = 1..m, the exercise's sum. F is output `output_digit` (one int, or one per
    image (N,)) of `net` (in eval mode). images: (N, 1, 28, 28) pixels in [0, 1]. baseline x':
    None for a black image, a number, or a tensor that broadcasts to `images`. Gradients come
    from torch.func.grad, vmapped over the images; every path point is one forward and backward.
    Returns the attributions (N, 1, 28, 28) in the dtype and on the device of `images`.
    Raises ValueError for a network in training mode or an unknown rule.
    """
    require_eval_mode(net)
    baseline = as_baseline(baseline, images)  # x', (N, 1, 28, 28)
    digits = output_digits(output_digit, len(images), images.device)  # (N,)
    alphas, weights = quadrature(rule, steps_m, dtype=images.dtype, device=images.device)  # (m,), (m,)
    params, buffers = functional_state(net)

    def output(x, digit):  # F(x): output neuron `digit` (a 0-dim tensor under vmap) for one image x (1, 28, 28)
        return functional_call(net, (params, buffers), (x[None],))[0].gather(0, digit[None])[0]

    gradient = vmap(grad(output))  # dF/dx for a batch of images (N, 1, 28, 28)
    total = torch.zeros_like(images)
    for alpha, weight in zip(alphas, weights):  # (1/m) sum_k dF(x' + k/m (x - x'))/dx for rule="right"
        total += weight * gradient(baseline + alpha * (images - baseline), digits)
    return (images - baseline) * total  # (N, 1, 28, 28)


def get_model(args, device):
    """Load the weights, or train and save them when asked (`--retrain`) or when they are missing."""
    if not args.retrain and (args.weights.exists() or args.weights.is_symlink()):  # a broken link is reported
        return load_cnn(args.weights, device)
    if not args.retrain:
        if (near := similar_file(args.weights)) is not None:
            raise UserError(
                f"--weights {relative(args.weights)} does not exist, but {relative(near)} does; pass --weights "
                f"{relative(near)}, or add --retrain to train a new network into {relative(args.weights)}."
            )
        print(f"{relative(args.weights)} not found: training a new network.")
    set_seed(args.seed)
    try:
        model, accuracy, _ = train_model(args, *mnist_splits(args, device), device)
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr (now {args.lr}); no weights were written.") from None
    config = {name: getattr(args, name) for name in ("epochs", "batch_size", "lr", "seed", "val_size", "train_size")}
    save_trained(model, config, accuracy, args.weights)
    return model


def save_trained(model, config, accuracy, path):
    """Save the checkpoint to `path`; if that fails (a full disk, a folder made read-only meanwhile), save it
    in the temporary folder instead and raise UserError saying where, so the training is not lost."""
    try:
        with atomic_path(path) as tmp:
            save_checkpoint(tmp, model, config, accuracy)
    except OSError as error:
        rescue = Path(tempfile.gettempdir()) / f"{path.stem}.rescued-{os.getpid()}{path.suffix}"
        with atomic_path(rescue) as tmp:
            save_checkpoint(tmp, model, config, accuracy)
        raise UserError(
            f"could not write {relative(path)} ({error.strerror}); the trained network was saved to "
            f"{relative(rescue)} instead: move it there, or pass --weights {relative(rescue)}."
        ) from None
    print(f"saved {relative(path)}")


def choose_images(args, images, labels, predictions):
    """Indices of the test digits to explain and the digit to explain for each."""
    if args.digit is None:
        index = torch.arange(min(args.num_images, len(images)))
        return index, predictions[index]
    index = torch.nonzero(labels == args.digit).flatten()[: args.num_images]
    return index, torch.full((len(index),), args.digit)


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


def explain_test_digits(args, model, device):
    """IG of the chosen test digits, timed and reported; returns (images, labels, digits, baselines, attributions)."""
    test_images, test_labels = get_mnist_test_data()
    x_test = to_float_images(test_images, device)
    with torch.no_grad():
        predictions = torch.cat([model(x).argmax(1) for x, _ in batches(x_test, x_test, 1000)]).cpu()
    print(f"test accuracy {(predictions == test_labels).float().mean():.2%} on {len(test_labels)} test digits")
    index, digits = choose_images(args, test_images, test_labels, predictions)
    images, labels = x_test[index], test_labels[index]
    generator = torch.Generator().manual_seed(args.seed)
    baselines = make_baselines(args.baseline, images.cpu(), args.noise_draws, generator).to(device)
    options = {name: getattr(args, name) for name in ("rule", "batch_points", "precision", "compile")}
    options["steps_m"] = args.steps

    def explain(x):
        return integrated_gradients_averaged(model, x, digits, baselines, **options)

    points = len(images) * args.steps * (args.noise_draws if args.baseline == "noise" else 1) * max(1, args.smoothgrad)
    synchronize(device)
    start = time.perf_counter()
    try:
        attributions = (
            smooth_grad(explain, images, args.smoothgrad, args.smoothgrad_sigma, generator)
            if args.smoothgrad
            else explain(images)
        )
    except CompileError as error:
        raise UserError(f"{error}: install one, or run without --compile.") from None
    synchronize(device)
    seconds = time.perf_counter() - start
    print(
        f"Integrated Gradients ({describe(args)}) for {len(images)} test digits: {points:,} path points "
        f"in {seconds:.1f} s ({points / seconds:,.0f} points/s) on {device}"
        + (", including the one-off torch.compile" if args.compile else "")
    )
    if args.precision != "float32":
        # plain IG was just computed; with SmoothGrad the inputs were noisy, so compute it anew
        report_precision(model, images, digits, baselines, options, None if args.smoothgrad else attributions)
    return images, labels, digits, baselines, attributions


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


def run_integrated_gradients(args, model, device):
    """Explain the chosen test digits, report completeness, run the sanity checks, write figures."""
    images, labels, digits, baselines, attributions = explain_test_digits(args, model, device)
    report_completeness(args, model, images, digits, baselines, attributions)
    images_cpu, attributions_cpu = images.cpu(), attributions.cpu()
    described = describe(args)
    title = f"Mean IG attribution per explained digit\n({len(images)} MNIST test digits, {described})"
    written = [
        save_figure(
            plot_attributions(images_cpu, attributions_cpu, labels, digits, f"Integrated Gradients ({described})"),
            args.out / "ig_attributions.png",
        ),
        save_figure(plot_class_means(attributions_cpu, digits, title), args.out / "ig_class_means.png"),
    ]
    if not args.skip_checks:
        written += run_checks(args, model, images, digits, attributions, described)
    for path in written:
        print(f"wrote {relative(path)}")


def check_arguments(args):
    """Refuse, before any work, values that argparse cannot judge alone, and outputs that could not be written."""
    check_output_folder(args.out)
    if args.weights.is_dir():
        raise UserError(
            f"--weights {relative(args.weights)} is a folder; name the weights file, e.g. {relative(WEIGHTS_PATH)}."
        )
    if args.retrain or not (args.weights.exists() or args.weights.is_symlink()):
        check_output_folder(args.weights.parent, flag="the folder of --weights")
    quadrature(args.rule, args.steps)  # the trapezoid rule needs two steps


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        type=path_argument,
        default=WEIGHTS_PATH,
        help=f"checkpoint to load, or to write when training (default: {relative(WEIGHTS_PATH)})",
    )
    parser.add_argument("--retrain", action="store_true", help="train anew and replace the weights file (default: off)")
    parser.add_argument(
        "--train-only", action="store_true", help="stop after training or loading and testing (default: off)"
    )
    parser.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip the completeness sweep, randomisation test and deletion curve (default: off)",
    )
    add_training_arguments(
        parser.add_argument_group("training (used with --retrain or when the weights file is missing)")
    )
    add_explain_arguments(parser.add_argument_group("Integrated Gradients"))
    add_performance_arguments(
        parser.add_argument_group("speed (the same attributions, computed faster or in less memory)")
    )
    add_common_arguments(parser)
    return parser


def add_training_arguments(group):
    group.add_argument("--epochs", type=int_range(1, 1000), default=4, help="training epochs, 1-1000 (default: 4)")
    group.add_argument(
        "--batch-size", type=int_range(1, 60_000), default=128, help="training batch size, 1-60000 (default: 128)"
    )
    group.add_argument(
        "--lr", type=learning_rate, default=3e-3, help="peak Adam learning rate, above 0 to 1 (default: 0.003)"
    )
    group.add_argument(
        "--val-size",
        type=int_range(0, 59_999),
        default=5000,
        help="training digits held out for validation, 0-59999; 0 trains on all 60,000 (default: 5000)",
    )
    group.add_argument(
        "--train-size",
        type=int_range(0, 60_000),
        default=0,
        help="use only this many training digits, 0-60000, 0 for all (default: 0)",
    )


def add_explain_arguments(group):
    group.add_argument(
        "--digit",
        type=digit,
        default=None,
        help="explain only test digits of this class, for this output (default: the first test digits, "
        "each for its predicted class)",
    )
    for flag, kind, default, text in (
        ("--num-images", int_range(1, 10_000), 400, "test digits to explain, 1-10000"),
        ("--steps", int_range(1, 100_000), 300, "summation steps m, 1-100000"),
    ):
        group.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")
    group.add_argument(
        "--rule", choices=RULES, default="right", help="integration rule (default: right, the exercise's sum)"
    )
    group.add_argument(
        "--baseline",
        choices=BASELINES,
        default="black",
        help=f"black image, Gaussian blur (sigma {BLUR_SIGMA} px) of the input, or uniform noise (default: black)",
    )
    group.add_argument(
        "--noise-draws",
        type=int_range(1, 1000),
        default=8,
        help="noise baselines averaged over with --baseline noise, 1-1000 (default: 8)",
    )
    group.add_argument(
        "--smoothgrad",
        type=int_range(0, 1000),
        default=0,
        help="average IG over this many noisy copies of each input, 0-1000, 0 = off (default: 0)",
    )
    group.add_argument(
        "--smoothgrad-sigma",
        type=float_range(0, 10, low_open=True),
        default=0.15,
        help="standard deviation of the SmoothGrad noise in pixel units, above 0 to 10 (default: 0.15)",
    )


def add_performance_arguments(group):
    group.add_argument(
        "--batch-points",
        type=int_range(1, 100_000_000),
        default=None,
        help="path points (image x step) evaluated at once, 1-100000000; bounds the memory "
        f"(default: {CPU_BATCH_POINTS} on a CPU, {GPU_BATCH_POINTS} on a GPU)",
    )
    group.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16 runs the network under autocast: faster on recent GPUs, less exact (default: float32)",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile the path evaluation with torch.compile, which fuses its element-wise work: "
        "about 1.5x faster on a CPU after a one-off compile of 5-30 s; needs a C++ compiler "
        "(CPU) or Triton (GPU) (default: off)",
    )


def main():
    args = build_parser().parse_args()
    check_arguments(args)
    device = device_from_argument(args.device)
    model = get_model(args, device)
    if args.train_only:
        if not args.retrain:
            test_images, test_labels = get_mnist_test_data()
            accuracy = evaluate(model, to_float_images(test_images, device), test_labels.to(device))
            print(f"test accuracy {accuracy:.2%} on {len(test_images)} test digits")
        return
    set_seed(args.seed)
    start = time.perf_counter()
    run_integrated_gradients(args, model, device)
    print(f"explained in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run_main(main)
