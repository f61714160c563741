"""Speed of Integrated Gradients: path points (image x step) per second, ours against Captum.

    python bench/bench_integrated.py                                   # 400 test digits, m = 300, this CPU
    python bench/bench_integrated.py --device cuda --num-images 10000 --steps 50 --batch-points 50000
    python bench/bench_integrated.py --device cuda --bfloat16          # also the reduced-precision path

Both run in this process on the same model, images, targets (the labels), black baseline, rule
and step count, with the same number of points per batch (Captum's `internal_batch_size`). Each
is timed `--repeats` times, alternating, and the best time counts. The attributions must agree;
the largest difference is printed. With --bfloat16 our autocast path is timed too and its
deviation from float32 printed.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from captum.attr import IntegratedGradients

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from attribution import spearman  # noqa: E402
from mnist_integrated import (  # noqa: E402
    CAPTUM_METHODS,
    CPU_BATCH_POINTS,
    GPU_BATCH_POINTS,
    RULES,
    default_batch_points,
    integrate_gradients,
    to_float_images,
)
from models import load_cnn  # noqa: E402
from util import WEIGHTS_PATH, get_device, get_mnist_test_data, positive_int, run_main, set_seed  # noqa: E402


def timed(function, device):
    """(result, seconds) of `function()`, waiting for the GPU to finish."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def relative_difference(a, b):
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=positive_int, default=400, help="test digits (default: 400)")
    parser.add_argument("--steps", type=positive_int, default=300, help="steps m (default: 300)")
    parser.add_argument(
        "--rule", choices=list(CAPTUM_METHODS), default="right", help="integration rule (default: right)"
    )
    parser.add_argument(
        "--batch-points",
        type=positive_int,
        default=None,
        help=f"points per batch, ours and Captum's (default: {CPU_BATCH_POINTS} on a CPU, {GPU_BATCH_POINTS} on a GPU)",
    )
    parser.add_argument("--repeats", type=positive_int, default=2, help="timed runs of each, best counts (default: 2)")
    parser.add_argument("--skip-captum", action="store_true", help="time only ours (default: off)")
    parser.add_argument("--bfloat16", action="store_true", help="also time the bfloat16 autocast path (default: off)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    assert set(CAPTUM_METHODS) <= set(RULES)

    set_seed(args.seed)
    device = get_device(args.device)
    args.batch_points = args.batch_points or default_batch_points(device)
    net = load_cnn(WEIGHTS_PATH, device)
    images, labels = get_mnist_test_data()
    if args.num_images > len(images):  # repeat the test set for sizes beyond 10,000
        repeat = -(-args.num_images // len(images))
        images, labels = images.repeat(repeat, 1, 1), labels.repeat(repeat)
    x = to_float_images(images[: args.num_images], device)
    targets = labels[: args.num_images].to(device)
    points = args.num_images * args.steps
    print(
        f"{args.num_images} images x {args.steps} steps = {points:,} points, rule {args.rule}, "
        f"{args.batch_points} points per batch, device {device}, {torch.get_num_threads()} CPU threads"
    )

    def ours(precision="float32"):
        return integrate_gradients(
            net, x, targets, args.steps, rule=args.rule, batch_points=args.batch_points, precision=precision
        )

    captum = IntegratedGradients(net)

    def theirs():
        return captum.attribute(
            x,
            baselines=torch.zeros_like(x),
            target=targets,
            n_steps=args.steps,
            method=CAPTUM_METHODS[args.rule],
            internal_batch_size=args.batch_points,
        )

    # warm-up: kernels, allocator, cuDNN autotuning
    small = min(4, args.num_images)
    integrate_gradients(net, x[:small], targets[:small], args.steps, rule=args.rule, batch_points=args.batch_points)
    best = {}
    results = {}
    for _ in range(args.repeats):
        for name, function in (("ours", ours), ("captum", theirs)):
            if name == "captum" and args.skip_captum:
                continue
            results[name], seconds = timed(function, device)
            best[name] = min(best.get(name, float("inf")), seconds)
            print(f"  {name:>6}: {seconds:7.2f} s, {points / seconds:12,.0f} points/s", flush=True)
    print(f"ours:   {points / best['ours']:12,.0f} points/s (best of {args.repeats})")
    if "captum" in best:
        ratio = best["captum"] / best["ours"]
        print(f"captum: {points / best['captum']:12,.0f} points/s (best of {args.repeats})")
        print(f"speed-up over Captum: {ratio:.2f}x")
        print(
            f"largest difference to Captum: {relative_difference(results['ours'], results['captum']):.1e} of the largest |attribution|"
        )
    if args.bfloat16:
        fast, _ = timed(lambda: ours("bfloat16"), device)
        fast, seconds = timed(lambda: ours("bfloat16"), device)
        exact = results["ours"]
        per_image = (fast - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
        rho = spearman(fast.abs().cpu(), exact.abs().cpu())
        print(
            f"bfloat16 autocast: {points / seconds:12,.0f} points/s ({best['ours'] / seconds:.2f}x float32); "
            f"deviation from float32: largest {relative_difference(fast, exact):.1e} of the largest |attribution|, "
            f"median per-image relative L2 error {per_image.median():.1e}, "
            f"median Spearman correlation of |attribution| {rho.median():.4f}"
        )


if __name__ == "__main__":
    run_main(main)
