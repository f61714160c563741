"""Speed of Integrated Gradients: path points (image x step) per second, ours against Captum.

    python bench/bench_integrated.py                                   # 400 test digits, m = 300, this CPU
    python bench/bench_integrated.py --device cuda --num-images 10000 --steps 50 --batch-points 50000
    python bench/bench_integrated.py --compile                         # also the torch.compile path
    python bench/bench_integrated.py --device cuda --bfloat16          # also the reduced-precision path

Both run in this process on the same model, images, targets (the labels), black baseline, rule
and step count, with the same number of points per batch (Captum's `internal_batch_size`). Each
is timed `--repeats` times, alternating, and the best time counts. The attributions must agree;
the largest difference is printed. With --compile our torch.compile path joins the alternation
(its one-off compile time is printed apart); with --bfloat16 our autocast path is timed too
(compiled as well with --compile) and its deviation from float32 printed.
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
    precision_deviation,
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
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile path (default: off)")
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

    def ours(precision="float32", compile=False):
        return integrate_gradients(
            net,
            x,
            targets,
            args.steps,
            rule=args.rule,
            batch_points=args.batch_points,
            precision=precision,
            compile=compile,
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

    contenders = {"ours": ours}
    if args.compile:
        contenders["compiled"] = lambda: ours(compile=True)
    if not args.skip_captum:
        contenders["captum"] = theirs

    # warm-up: kernels, allocator, cuDNN autotuning; with --compile the compilation (padding
    # gives every chunk the shape of a full one, so a few images compile what all of them need)
    small = min(4, args.num_images)

    def warm_up(compile):
        integrate_gradients(
            net, x[:small], targets[:small], args.steps, rule=args.rule, batch_points=args.batch_points, compile=compile
        )

    warm_up(compile=False)
    if args.compile:
        _, seconds = timed(lambda: warm_up(compile=True), device)
        print(f"torch.compile: {seconds:.1f} s to compile (once per process and chunk shape)")
    best = {}
    results = {}
    for _ in range(args.repeats):
        for name, function in contenders.items():
            results[name], seconds = timed(function, device)
            best[name] = min(best.get(name, float("inf")), seconds)
            print(f"  {name:>8}: {seconds:7.2f} s, {points / seconds:12,.0f} points/s", flush=True)
    for name in contenders:
        print(f"{name + ':':9} {points / best[name]:12,.0f} points/s (best of {args.repeats})")
    if "captum" in best:
        for name in ("ours", "compiled"):
            if name in best:
                print(f"speed-up of {name} over Captum: {best['captum'] / best[name]:.2f}x")
        for name in ("ours", "compiled"):
            if name in results:
                print(
                    f"largest difference of {name} to Captum: "
                    f"{relative_difference(results[name], results['captum']):.1e} of the largest |attribution|"
                )
    if args.bfloat16:
        fast, _ = timed(lambda: ours("bfloat16", args.compile), device)
        fast, seconds = timed(lambda: ours("bfloat16", args.compile), device)
        exact = results["ours"]
        reference = best["compiled" if args.compile else "ours"]
        largest, median = precision_deviation(fast, exact)
        rho = spearman(fast.abs().cpu(), exact.abs().cpu())
        speed_up = f"{best['captum'] / seconds:.1f}x Captum, " if "captum" in best else ""
        print(
            f"bfloat16 autocast{' compiled' if args.compile else ''}: {points / seconds:12,.0f} points/s "
            f"({speed_up}{reference / seconds:.2f}x float32); "
            f"deviation from float32: largest {largest:.1e} of the largest |attribution|, "
            f"median per-image relative L2 error {median:.1e}, "
            f"median Spearman correlation of |attribution| {rho.median():.4f}"
        )


if __name__ == "__main__":
    run_main(main)
