"""Speed of Integrated Gradients: path points (image x step) per second, the exercise's readable
`integrate_gradients` (src/mnist_integrated.py) and its fast twin against Captum.

    python bench/bench_integrated.py                                   # 20 test digits, m = 300, this CPU
    python bench/bench_integrated.py --device cuda --num-images 10000 --steps 50 --batch-points 50000
    python bench/bench_integrated.py --compile                         # also the torch.compile path
    python bench/bench_integrated.py --device cuda --bfloat16          # also the reduced-precision path

All run in this process on the same model, images, targets (the labels), black baseline, rule
and step count. The readable function sends the m points of one digit through the network at
once; Captum gets the same number of points per batch (`internal_batch_size` = m), the fast twin
its own chunking (--batch-points). Each contender (readable; fast = integrated_fast.integrate_gradients_fast,
eager; with --compile its torch.compile path; with --bfloat16 its autocast path, compiled too with
--compile; Captum) is warmed up on a few images, then timed `--repeats` times, alternating. Wall and CPU time are
reported as the median and range over the repeats, and so is the speed-up over Captum, which is
computed per repeat. The attributions must agree with Captum's: the largest difference is
printed, and for bfloat16 its deviation from float32.
"""

import argparse

import common_bench as bench
import torch
from captum.attr import IntegratedGradients

from iml.attribution import CPU_BATCH_POINTS, GPU_BATCH_POINTS, default_batch_points, spearman
from iml.cli import UserError, device_from_argument, positive_int, run_main
from iml.common import WEIGHTS_PATH, set_seed
from iml.integrated_fast import CompileError, integrate_gradients_fast, precision_deviation
from iml.mnist_cnn import to_float_images
from iml.quadrature import CAPTUM_METHODS, RULES
from mnist_integrated import integrate_gradients
from models import load_cnn
from util import get_mnist_test_data

PEER = "captum"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=positive_int, default=20, help="test digits (default: 20)")
    parser.add_argument("--steps", type=positive_int, default=300, help="steps m (default: 300)")
    parser.add_argument(
        "--rule", choices=list(CAPTUM_METHODS), default="right", help="integration rule (default: right)"
    )
    parser.add_argument(
        "--batch-points",
        type=positive_int,
        default=None,
        help=f"points per batch of the fast twin (default: {CPU_BATCH_POINTS} on a CPU, {GPU_BATCH_POINTS} on a GPU)",
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each (default: 3)")
    parser.add_argument(
        "--skip-captum", action="store_true", help="time only the readable function and the fast twin (default: off)"
    )
    parser.add_argument(
        "--skip-readable", action="store_true", help="time only the fast twin and Captum (default: off)"
    )
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile path (default: off)")
    parser.add_argument("--bfloat16", action="store_true", help="also time the bfloat16 autocast path (default: off)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bench.add_json_argument(parser)
    return parser


def load_inputs(count, device):
    """The first `count` test digits (the test set repeated beyond 10,000) and their labels, on `device`."""
    images, labels = get_mnist_test_data()
    if count > len(images):
        repeat = -(-count // len(images))
        images, labels = images.repeat(repeat, 1, 1), labels.repeat(repeat)
    return to_float_images(images[:count], device), labels[:count].to(device)


def make_contenders(args, net):
    """{name: function(images, targets) -> attributions}: ours, its variants as asked, and Captum."""
    options = {"steps_m": args.steps, "rule": args.rule, "batch_points": args.batch_points}

    def ours(precision="float32", compile=False):
        return lambda x, t: integrate_gradients_fast(net, x, t, precision=precision, compile=compile, **options)

    contenders = {}
    if not args.skip_readable and args.rule == "right":
        contenders["readable"] = lambda x, t: integrate_gradients(net, x, t, args.steps)
    contenders["fast"] = ours()
    if args.compile:
        contenders["compiled"] = ours(compile=True)
    if args.bfloat16:
        contenders["bfloat16" + ("+compile" if args.compile else "")] = ours("bfloat16", args.compile)
    if not args.skip_captum:
        captum = IntegratedGradients(net)
        contenders[PEER] = lambda x, t: captum.attribute(
            x,
            baselines=torch.zeros_like(x),
            target=t,
            n_steps=args.steps,
            method=CAPTUM_METHODS[args.rule],
            internal_batch_size=args.steps,
        )
    return contenders


def warm_up(contenders, x, targets, device):
    """Run each contender once on a few images: kernels, allocator, cuDNN autotuning and compilation.

    Padding gives every compiled chunk the shape of a full one, so a few images compile what all
    of them need. Returns {name: {"wall_s", "cpu_s"}} of the warm-ups that compiled.
    """
    small = min(4, len(x))
    compiled = {}
    for name, function in contenders.items():
        _, timing = bench.measure(lambda f=function: f(x[:small], targets[:small]), device)
        if "compile" in name:
            compiled[name] = {"wall_s": timing.wall, "cpu_s": timing.cpu}
            print(f"torch.compile of {name}: {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU (once per process)")
    return compiled


def report_speed(series, points, repeats):
    """Print points/s per contender and each one's speed-up over Captum (per repeat); returns them for JSON."""
    results = {}
    print(f"points per second ({bench.repeats_note(repeats)}):")
    for name, s in series.items():
        print(f"  {name + ':':18} {bench.fmt_series(s, points, 'points/s')}")
        results[name] = {**s.summary(), "points_per_s": bench.stats(bench.rates(points, s.wall))}
    if PEER in series:
        peer = series[PEER]
        for name, s in series.items():
            if name == PEER:
                continue
            wall, cpu = bench.ratios(peer.wall, s.wall), bench.ratios(peer.cpu, s.cpu)
            print(f"speed-up of {name} over Captum: {bench.fmt(wall, 'x')} wall, {bench.fmt(cpu, 'x')} CPU")
            results[name]["speedup_vs_captum"] = {"wall": bench.stats(wall), "cpu": bench.stats(cpu)}
    return results


def relative_difference(a, b):
    """max |a - b| / max |b|."""
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def report_agreement(values, series):
    """Print how far each float32 result lies from Captum's and bfloat16 from float32; returns them for JSON."""
    results = {}
    if PEER in values:
        for name in ("readable", "fast", "compiled"):
            if name in values:
                difference = relative_difference(values[name], values[PEER])
                print(f"largest difference of {name} to Captum: {difference:.1e} of the largest |attribution|")
                results[f"{name}_vs_captum_max_rel_difference"] = difference
    for name in values:
        if name.startswith("bfloat16"):
            exact = "compiled" if "compile" in name else "fast"
            largest, median = precision_deviation(values[name], values["fast"])
            rho = float(spearman(values[name].abs().cpu(), values["fast"].abs().cpu()).median())
            speed = bench.ratios(series[exact].wall, series[name].wall)
            print(
                f"{name}: {bench.fmt(speed, 'x')} the speed of float32 {exact} (per repeat); deviation from "
                f"float32: largest {largest:.1e} of the largest |attribution|, median per-image relative L2 "
                f"error {median:.1e}, median Spearman correlation of |attribution| {rho:.4f}"
            )
            results[name] = {
                "speedup_vs_float32": bench.stats(speed),
                "max_rel_deviation": largest,
                "median_rel_l2_error": median,
                "median_spearman": rho,
            }
    return results


def main():
    args = build_parser().parse_args()
    assert set(CAPTUM_METHODS) <= set(RULES)
    set_seed(args.seed)
    device = device_from_argument(args.device)
    args.batch_points = args.batch_points or default_batch_points(device)
    net = load_cnn(WEIGHTS_PATH, device)
    x, targets = load_inputs(args.num_images, device)
    points = args.num_images * args.steps
    print(
        f"{args.num_images} images x {args.steps} steps = {points:,} points, rule {args.rule}, "
        f"{args.batch_points} points per batch, device {device}, {torch.get_num_threads()} CPU threads"
    )
    contenders = make_contenders(args, net)
    try:
        compiled = warm_up(contenders, x, targets, device)
    except CompileError as error:
        raise UserError(f"{error}: install one, or run without --compile.") from None

    def each(name, timing):
        print(f"  {name:>16}: {timing.wall:7.2f} s wall, {timing.cpu:7.2f} s CPU", flush=True)

    bound = {name: (lambda f=f: f(x, targets)) for name, f in contenders.items()}
    series, values = bench.alternate(bound, args.repeats, device, on_each=each)
    results = {"points": points, "compile": compiled, "contenders": report_speed(series, points, args.repeats)}
    results["agreement"] = report_agreement(values, series)
    bench.write_json(args.json, "integrated", args, results, device)


if __name__ == "__main__":
    run_main(main)
