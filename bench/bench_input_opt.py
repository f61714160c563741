"""Benchmark: time of the default input optimization run on this machine.

    python bench/bench_input_opt.py                   # full default run + batched vs per-neuron loop
    python bench/bench_input_opt.py --repeats 5 --threads 2
    python bench/bench_input_opt.py --skip-cli --steps 10 --repeats 2     # a quick check

Three things, each as wall time and CPU time (on a shared machine the CPU time is steadier), as
the median and range over `--repeats` runs:
1. `python src/input_opt.py` with its defaults, as a user runs it (a subprocess: start-up,
   optimization, tables and figures written to a temporary folder; its CPU time is the child's).
2. In this process, the optimization of the default run (10 digits x 2 starts) batched with
   torch.func.grad + vmap and torch.optim.Adam, as the exercise's `input_opt.optimize_input` does it
   (src/ is put on sys.path by common_bench; bench is not part of the package).
3. Its peer in the same process: a plain per-neuron autograd loop, one image and one Adam
   optimizer at a time (`x.requires_grad_()`, `model(x)[0, i].backward()`), the way the exercise
   is usually first written. It must reach the same images. 2 and 3 alternate after a warm-up,
   and the speed-up 3 / 2 is computed per repeat.
"""

import argparse
import subprocess
import sys
import tempfile

import common_bench as bench
import torch

from iml.cli import UserError, device_from_argument, positive_int, run_main
from iml.common import ROOT, WEIGHTS_PATH
from input_opt import DIGITS, STARTS, build_parser, make_start, optimize_input
from models import load_cnn

DEFAULTS = build_parser().parse_args([])  # the script's own defaults: steps and learning rate
STEPS, LR = DEFAULTS.steps, DEFAULTS.lr

PEER = "per-neuron loop"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each (default: 3)")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads in this process, as the script (default: 1)"
    )
    parser.add_argument("--device", default="cpu", help="device for the in-process timings (default: cpu)")
    parser.add_argument(
        "--steps", type=positive_int, default=STEPS, help=f"steps of the in-process timings (default: {STEPS})"
    )
    parser.add_argument("--skip-cli", action="store_true", help="do not time the full command (default: off)")
    bench.add_json_argument(parser)
    return parser


def per_neuron_autograd(model, neurons, starts, steps, lr):
    """The peer: one image, one Adam and one backward pass per (start, digit) pair."""
    images = torch.empty(len(starts), len(neurons), 1, 28, 28)
    for s, start in enumerate(starts):
        for k, neuron in enumerate(neurons):
            x = start.clone().requires_grad_(True)  # (1, 1, 28, 28)
            optimizer = torch.optim.Adam([x], lr=lr, maximize=True)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                model(x)[0, neuron].backward()
                optimizer.step()
            images[s, k] = x.detach()[0].cpu()
    return images


def run_cli(command):
    """Run `command`; a failure becomes a UserError that quotes the end of its stderr."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as error:
        tail = " | ".join(error.stderr.strip().splitlines()[-3:])
        raise UserError(f"`{' '.join(command[1:])}` failed with exit status {error.returncode}: {tail}") from None


def time_cli(repeats):
    """Time `python src/input_opt.py` (defaults, figures to a temporary folder); prints and returns the numbers."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(ROOT / "src" / "input_opt.py"), "--out", out]
        series, values = bench.alternate({"cli": lambda: run_cli(command)}, repeats)
    print(
        f"`python src/input_opt.py` (defaults), {bench.repeats_note(repeats, alternating=False)}: "
        f"{bench.fmt_series(series['cli'])} (CPU of the child process)"
    )
    assert values["cli"].stdout.strip().splitlines()[-1].startswith("further: ")  # the run finished
    return series["cli"].summary()


def compare(args, device):
    """Batched torch.func optimization against the per-neuron autograd loop; prints and returns the numbers."""
    model = load_cnn(WEIGHTS_PATH, device)
    generator = torch.Generator().manual_seed(0)
    starts = {name: make_start(name, generator).to(device) for name in STARTS}

    def contenders(steps):
        return {
            "batched": lambda: optimize_input(model, DIGITS, starts, steps, LR).images,
            PEER: lambda: per_neuron_autograd(model, DIGITS, list(starts.values()), steps, LR),
        }

    bench.alternate(contenders(2), 1, device)  # warm-up: kernels, and torch.optim's first step
    series, images = bench.alternate(contenders(args.steps), args.repeats, device)
    difference = ((images[PEER] - images["batched"]).abs().max() / images["batched"].abs().max()).item()
    wall = bench.ratios(series[PEER].wall, series["batched"].wall)
    cpu = bench.ratios(series[PEER].cpu, series["batched"].cpu)
    pairs = len(STARTS) * len(DIGITS)
    print(f"plain optimization, {pairs} images x {args.steps} steps ({bench.repeats_note(args.repeats)}):")
    print(f"  torch.func.grad + vmap, batched : {bench.fmt_series(series['batched'])}")
    print(f"  per-neuron autograd loop        : {bench.fmt_series(series[PEER])}")
    print(f"  speed-up of the batched version : {bench.fmt(wall, 'x')} wall, {bench.fmt(cpu, 'x')} CPU")
    print(f"  largest difference of the final images, relative to their largest pixel: {difference:.1e}")
    return {
        "batched": series["batched"].summary(),
        "per_neuron_loop": series[PEER].summary(),
        "speedup": {"wall": bench.stats(wall), "cpu": bench.stats(cpu)},
        "max_rel_difference": difference,
    }


def main():
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    device = device_from_argument(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU thread(s)")
    results = {}
    if not args.skip_cli:
        results["cli"] = time_cli(args.repeats)
    results["optimization"] = compare(args, device)
    bench.write_json(args.json, "input_opt", args, results, device)


if __name__ == "__main__":
    run_main(main)
