"""Benchmark: wall time of the default input optimisation run on this machine.

    python bench/bench_input_opt.py                   # full default run + batched vs per-neuron loop
    python bench/bench_input_opt.py --repeats 5 --threads 2

Three numbers, each as wall time and CPU time (on a shared machine the CPU time is steadier):
1. `python src/input_opt.py` with its defaults, as a user runs it (a subprocess: start-up,
   optimisation, tables and figures written to a temporary folder).
2. In this process, the plain optimisation of the default run (10 digits x 2 starts) batched with
   torch.func.grad + vmap, as `optimize_inputs` does it.
3. Its peer in the same process: a plain per-neuron autograd loop, one image and one Adam
   optimiser at a time (`x.requires_grad_()`, `model(x)[0, i].backward()`), the way the exercise
   is usually first written. It must reach the same images; the ratio 3 / 2 is the speed-up.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from input_opt import DIGITS, LR, STARTS, STEPS, make_starts, optimize_inputs  # noqa: E402
from models import load_cnn  # noqa: E402
from util import ROOT, WEIGHTS_PATH, get_device, positive_int, run_main  # noqa: E402


def per_neuron_autograd(model, neurons, starts, steps, lr):
    """The peer: one image, one Adam and one backward pass per (start, digit) pair."""
    images = torch.empty(len(starts), len(neurons), 1, 28, 28)
    for s, start in enumerate(starts):
        for k, neuron in enumerate(neurons):
            x = start.clone().unsqueeze(0).requires_grad_(True)  # (1, 1, 28, 28)
            optimizer = torch.optim.Adam([x], lr=lr, maximize=True)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                model(x)[0, neuron].backward()
                optimizer.step()
            images[s, k] = x.detach()[0].cpu()
    return images


def cpu_seconds():
    """CPU time of this process and its finished children, all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(repeats, function, synchronize):
    """(best wall seconds, CPU seconds of that repeat, last value) over `repeats` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        value = function()
        synchronize()
        best = min(best, (time.perf_counter() - wall, cpu_seconds() - cpu))
    return *best, value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats, best kept (default: 3)")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads in this process, as the script (default: 1)"
    )
    parser.add_argument("--device", default="cpu", help="device for the in-process timings (default: cpu)")
    parser.add_argument("--skip-cli", action="store_true", help="do not time the full command (default: off)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU thread(s)")

    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, str(ROOT / "src" / "input_opt.py"), "--out", out]
            wall, cpu, result = best_of(
                args.repeats, lambda: subprocess.run(command, capture_output=True, text=True, check=True), synchronize
            )
        reported = result.stdout.strip().splitlines()[-1].split("; ")[-1]
        print(
            f"`python src/input_opt.py` (defaults): {wall:.1f} s wall, {cpu:.1f} s CPU, best of {args.repeats} "
            f"(the script itself reports {reported})"
        )

    model = load_cnn(WEIGHTS_PATH, device)
    starts = make_starts(STARTS, torch.Generator().manual_seed(0), device)
    batched, batched_cpu, result = best_of(
        args.repeats, lambda: optimize_inputs(model, DIGITS, starts, STEPS, LR), synchronize
    )
    looped, looped_cpu, images = best_of(
        args.repeats, lambda: per_neuron_autograd(model, DIGITS, starts, STEPS, LR), synchronize
    )
    difference = ((images - result.images).abs().max() / result.images.abs().max()).item()
    pairs = len(STARTS) * len(DIGITS)
    print(f"plain optimisation of the default run, {pairs} images x {STEPS} steps, best of {args.repeats}:")
    print(f"  torch.func.grad + vmap, batched : {batched:6.2f} s wall, {batched_cpu:6.2f} s CPU")
    print(f"  per-neuron autograd loop        : {looped:6.2f} s wall, {looped_cpu:6.2f} s CPU")
    print(f"  speed-up of the batched version : {looped / batched:6.1f}x wall, {looped_cpu / batched_cpu:.1f}x CPU")
    print(f"  largest difference of the final images, relative to their largest pixel: {difference:.1e}")


if __name__ == "__main__":
    run_main(main)
