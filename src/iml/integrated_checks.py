"""The checks of the IG commands, each printed and drawn: completeness against the number of steps
for every rule and exact IG's true error (`python -m iml ig-exact`), the model-parameter
randomization test and pixel deletion (`python -m iml ig-checks`), and the deviation of reduced
precision from float32 (`python -m iml ig --precision bfloat16`). `args` is the command's options.
"""

import copy
import time

import torch

from iml.attribution import area_under_curve, deletion_curve, randomization_test, saliency, target_outputs
from iml.exact_ig import exact_integrated_gradients, rule_errors
from iml.integrated_fast import integrate_gradients_fast, precision_deviation
from iml.integrated_plots import (
    plot_completeness,
    plot_deletion,
    plot_exact_errors,
    plot_randomization,
    plot_randomization_maps,
    stage_label,
)
from iml.outputs import save_figure
from iml.progress import progress as progress_bar
from iml.quadrature import RULES

SWEEP_STEPS = (2, 4, 8, 16, 32, 64, 128, 256)
SWEEP_IMAGES = 6
RANDOMIZATION_IMAGES = 8
RANDOMIZATION_STEPS = 50
DELETION_FRACTIONS = torch.linspace(0, 0.25, 26)
PRECISION_CHECK_IMAGES = 16


def integrated_gradients_averaged(net, images, output_digit, baselines, **options):
    """IG (the fast path, with its `options`) averaged over baselines (D, N, 1, 28, 28), or for one (N, ...)."""
    if baselines.dim() == images.dim():
        return integrate_gradients_fast(net, images, output_digit, baseline=baselines, **options)
    total = sum(integrate_gradients_fast(net, images, output_digit, baseline=b, **options) for b in baselines)
    return total / len(baselines)


def path_points(total, desc):
    """A progress bar (iml.progress) for `total` path points of IG, to pass to `integrate_gradients_fast`."""
    return progress_bar(total=total, unit="points", desc=f"{desc}, path points")


def completeness_sweep(net, images, digits, steps=SWEEP_STEPS, batch_points=None, progress=None):
    """{rule: [median |gap| / |F(x) - F(x')| for each m in steps]} with the black baseline.

    The gap is `completeness_gap`'s, sum_i attr_i - (F(x) - F(x')), with F(x) - F(x') computed once.
    progress: a bar that counts the path points done, or None.
    """
    change = target_outputs(net, images, digits) - target_outputs(net, torch.zeros_like(images), digits)  # (N,)
    sweep = {}
    for rule in RULES:
        sweep[rule] = []
        for m in steps:
            attributions = integrate_gradients_fast(
                net, images, digits, m, rule=rule, batch_points=batch_points, progress=progress
            )
            gap = attributions.flatten(1).sum(1) - change
            sweep[rule].append(float((gap.abs() / change.abs()).median()))
    return sweep


def report_precision(model, images, digits, baselines, options, reduced=None, count=PRECISION_CHECK_IMAGES):
    """Print how far the reduced-precision IG of the first `count` images lies from float32.

    reduced: the reduced-precision plain IG of `images` when already computed (only its first
    `count` rows are used), else None.
    """
    k = min(count, len(images))
    subset = baselines[:k] if baselines.dim() == images.dim() else baselines[:, :k]
    if reduced is None:
        reduced = integrated_gradients_averaged(model, images[:k], digits[:k], subset, **options)
    reduced = reduced[:k]
    exact_options = {**options, "precision": "float32", "compile": False}
    exact = integrated_gradients_averaged(model, images[:k], digits[:k], subset, **exact_options)
    largest, median = precision_deviation(reduced, exact)
    print(
        f"{options['precision']} against float32 on the first {k} digits (plain IG): largest difference "
        f"{largest:.1e} of the largest |attribution|, median per-image relative L2 error {median:.1e}"
    )


def completeness_check(args, model, images, digits):
    """Print and draw the completeness gap of every rule against m; returns the figure's path."""
    with path_points(len(images) * sum(SWEEP_STEPS) * len(RULES), "completeness sweep") as bar:
        sweep = completeness_sweep(model, images, digits, batch_points=args.batch_points, progress=bar)
    print("completeness gap (median relative, black baseline) at m = " + ", ".join(map(str, SWEEP_STEPS)) + ":")
    for rule, gaps in sweep.items():
        print(f"  {rule:>13}: " + " ".join(f"{g:.1e}" for g in gaps))
    title = f"Completeness gap of IG against the number of steps\n({len(images)} MNIST test digits, black baseline)"
    return save_figure(plot_completeness(SWEEP_STEPS, sweep, title), args.out / "ig_completeness.png")


def exact_check(args, model, images, digits):
    """Print and draw each rule's true error (against exact IG, exact_ig.py) beside its completeness
    gap, against m, in float64 on the CPU; returns the figure's path."""
    net = copy.deepcopy(model).double().cpu()
    images = images.double().cpu()
    start = time.perf_counter()
    with progress_bar(total=len(images), unit="digits", desc="exact IG") as bar:
        exact, pieces = exact_integrated_gradients(net, images, digits.cpu(), progress=bar)
    seconds = time.perf_counter() - start
    print(
        f"exact IG of {len(images)} digits (float64): {', '.join(map(str, pieces.tolist()))} linear pieces, "
        f"{seconds / len(images):.1f} s per digit"
    )
    with path_points(len(images) * sum(SWEEP_STEPS) * len(RULES), "every rule against exact IG") as bar:
        table = rule_errors(net, images, digits.cpu(), exact, SWEEP_STEPS, RULES, progress=bar)
    print(
        "true error ||IG - IG_exact|| / ||IG_exact|| (median) / completeness gap (median) at m = "
        + ", ".join(map(str, SWEEP_STEPS))
        + ":"
    )
    for rule, (errors, gaps) in table.items():
        cells = " ".join(f"{e:.1e}/{g:.1e}" for e, g in zip(errors.median(1).values, gaps.median(1).values))
        print(f"  {rule:>13}: {cells}")
    title = f"True error of IG and completeness gap against m ({len(images)} MNIST test digits, black baseline)"
    return save_figure(plot_exact_errors(SWEEP_STEPS, table, pieces, title), args.out / "ig_exact_error.png")


def randomization_check(args, model, x, digits):
    """Print and draw the model-parameter randomisation test; returns the two figures' paths."""
    steps = min(args.steps, RANDOMIZATION_STEPS)

    def explain(net, images, d):
        return integrate_gradients_fast(net, images, d, steps, rule=args.rule, batch_points=args.batch_points)

    stages, correlations, maps = randomization_test(model, explain, x, digits, mask=x != 0, seed=args.seed)
    constant = int(correlations.isnan().sum())
    print(
        "randomisation test, mean Spearman correlation of |IG| with the trained model's: "
        + ", ".join(f"{stage_label(s)} {c:.2f}" for s, c in zip(stages, correlations.nanmean(1)))
        + (f" ({constant} constant maps without a rank order left out)" if constant else "")
    )
    title = f"Model-parameter randomisation test ({len(x)} MNIST test digits, black baseline, m = {steps})"
    maps_title = f"IG maps as the layers are re-initialised from the logits down\n(MNIST test digits, black baseline, m = {steps})"
    return [
        save_figure(plot_randomization(stages, correlations, title), args.out / "ig_randomization.png"),
        save_figure(
            plot_randomization_maps(stages, maps[:, :4].cpu(), x[:4].cpu(), maps_title),
            args.out / "ig_randomization_maps.png",
        ),
    ]


def deletion_check(args, model, images, digits, attributions, described):
    """Print and draw pixel deletion in the order of IG, the plain gradient and chance; returns the figure's path."""
    generator = torch.Generator().manual_seed(args.seed)
    orders = {
        "Integrated Gradients": attributions,
        "plain gradient": saliency(model, images, digits),
        "random": torch.rand(images.shape, generator=generator).to(images),
    }
    count = len(orders) * len(DELETION_FRACTIONS) * len(images)
    with progress_bar(total=count, unit="images", desc="pixel deletion") as bar:
        curves = {
            name: deletion_curve(model, images, digits, scores, DELETION_FRACTIONS, progress=bar).cpu()
            for name, scores in orders.items()
        }
    print(
        "pixel deletion, mean probability of the explained digit over the first 25% of pixels removed "
        "(lower is more faithful): "
        + ", ".join(f"{name} {area_under_curve(DELETION_FRACTIONS, c).mean():.3f}" for name, c in curves.items())
    )
    title = f"Pixel deletion on {len(images)} MNIST test digits ({described})"
    return save_figure(plot_deletion(DELETION_FRACTIONS, curves, title), args.out / "ig_deletion.png")
