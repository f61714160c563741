"""Task 3 on other representations: `python -m iml deepfake-representations`.

    python -m iml deepfake-representations                         # log FFT, log DCT and pixels: one table
    python -m iml deepfake-representations --data data/ffhq_standin --train-size 4000 --val-size 500 \\
        --test-size 1000 --representation all

The exercise's detector (one nn.Linear on standardized coefficients) is trained and tested on each
representation in turn with the fast twin (detector.py) and the same split and seed, so the table
says what the Fourier magnitude adds over the DCT (Frank et al. 2020) and over raw pixels. Each
writes its mean maps and weights (and, for the FFT, the radial profile) to --out.
"""

import time

import util
from iml.cli import UserError, add_common_arguments, check_output_folder, check_output_outside
from iml.common import relative, set_seed
from iml.deepfake_plots import (
    describe_data,
    format_table,
    plot_mean_maps,
    plot_radial_profile,
    plot_weights,
)
from iml.detector import (
    add_data_arguments,
    add_training_arguments,
    class_means,
    command_parser,
    evaluate,
    fit_detector,
    format_report,
    load_placed_splits,
    prepare_run,
    wilson_interval,
)
from iml.outputs import figure_set
from iml.progress import progress, write_line
from iml.spectra import REPRESENTATIONS


def run_representation(args, splits, representation, device):
    """Statistics, training, test and figures for one representation; returns a result dict."""
    start = time.perf_counter()
    model, val_accuracy = fit_detector(args, splits, representation, device, log=write_line)
    train_seconds = time.perf_counter() - start
    train_accuracy, train_confusion = evaluate(model, *splits["train"], representation, device, args.batch_size)
    test_accuracy, confusion = evaluate(model, *splits["test"], representation, device, args.batch_size)
    write_line(format_report(train_confusion, confusion, f"{representation}: "))
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
    difference = means[1] - means[0]  # (C, H, W), fake - real
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
    return means


def run(args):
    """The whole command for parsed `args`; returns the list of result dicts, one per representation."""
    set_seed(args.seed)
    device, _, _ = prepare_run(args)
    splits, decode_seconds = load_placed_splits(args, device)
    start = time.perf_counter() - decode_seconds
    representations = list(REPRESENTATIONS) if args.representation == "all" else [args.representation]
    try:
        bar = progress(representations, unit="representations", desc="deepfake-representations")
        results = [run_representation(args, splits, r, device) for r in bar]  # their lines go above the bar
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr and run again.") from None
    for result in results:
        result["decode_seconds"] = decode_seconds
    if len(results) > 1:
        standin = util.is_standin(args.data)
        print("\n" + ("STAND-IN DATA, not FFHQ/StyleGAN\n" if standin else "") + format_table(results))
    print(f"total {time.perf_counter() - start:.1f} s")
    return results


def build_parser():
    """The command line of `python -m iml deepfake-representations`."""
    parser = command_parser("deepfake-representations", __doc__)
    add_data_arguments(parser, util.FFHQ_SPLIT, ", the exercise's")
    add_training_arguments(parser)
    parser.add_argument(
        "--representation",
        choices=[*REPRESENTATIONS, "all"],
        default="all",
        help="what the linear layer sees: fft (the exercise), dct, pixel, or all three in turn (default: all)",
    )
    add_common_arguments(parser, "deepfake-representations")
    return parser


def main(argv=None):
    """`python -m iml deepfake-representations [OPTIONS]`: check the output folder first, then `run`."""
    args = build_parser().parse_args(argv)
    check_output_folder(args.out)
    check_output_outside(args.out, {"--data": args.data})
    with figure_set(args.out, "deepfake-representations") as written:  # every figure of the run, or none
        results = run(args)
    print("\n".join(f"wrote {relative(path)}" for path in written))
    return results
