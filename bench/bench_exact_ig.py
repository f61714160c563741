"""Exact Integrated Gradients against m = 300 right-Riemann IG: pieces and seconds per digit.

    python bench/bench_exact_ig.py                 # the first 6 MNIST test digits, 3 repeats, float64, CPU
    python bench/bench_exact_ig.py --digits 2 --repeats 1 --json out.json

Both run on the shipped CNN in float64 on the CPU, alternating in this process on the same digits:
`exact_ig.exact_integrated_gradients` (every linear piece of the path, one gradient per piece)
and `integrated_fast.integrate_gradients_fast` with the exercise's right rule and m = 300. It
prints the pieces per digit and, for each, seconds per digit (median [range] over the repeats,
wall and CPU), and the ratio exact / right rule per repeat.
"""

import argparse

import common_bench as bench
import torch

import util
from iml.cli import int_range, run_main
from iml.common import WEIGHTS_PATH
from iml.exact_ig import exact_integrated_gradients
from iml.integrated_fast import integrate_gradients_fast
from iml.mnist_cnn import to_float_images
from models import load_cnn


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int_range(1, 100), default=6, help="test digits, 1-100 (default: 6)")
    parser.add_argument("--repeats", type=int_range(1, 20), default=3, help="timed runs of each, 1-20 (default: 3)")
    parser.add_argument("--steps", type=int_range(1, 100_000), default=300, help="m of the right rule (default: 300)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    net = load_cnn(WEIGHTS_PATH).double()
    images, labels = util.get_mnist_test_data()
    x, digits = to_float_images(images[: args.digits], "cpu").double(), labels[: args.digits]
    pieces = []

    def exact():
        attributions, found = exact_integrated_gradients(net, x, digits)
        pieces[:] = found.tolist()
        return attributions

    contenders = {
        "exact": exact,
        f"right, m = {args.steps}": lambda: integrate_gradients_fast(net, x, digits, args.steps),
    }
    series, values = bench.alternate(contenders, args.repeats)
    (name_exact, exact_series), (name_rule, rule_series) = series.items()
    error = (values[name_rule] - values[name_exact]).flatten(1).norm(dim=1) / values[name_exact].flatten(1).norm(dim=1)
    per_digit = {name: [s / args.digits for s in s_.wall] for name, s_ in series.items()}
    print(
        f"{args.digits} MNIST test digits, float64, CPU, {torch.get_num_threads()} threads; {bench.repeats_note(args.repeats)}"
    )
    print(f"linear pieces per digit: {', '.join(map(str, pieces))} (median {sorted(pieces)[len(pieces) // 2]})")
    for name, s_ in series.items():
        cpu = [c / args.digits for c in s_.cpu]
        print(f"{name:>14}: {bench.fmt(per_digit[name], 's', '.2f')} per digit wall, {bench.fmt(cpu, 's', '.2f')} CPU")
    print(f"exact / right: {bench.fmt(bench.ratios(exact_series.wall, rule_series.wall), 'x', '.1f')} the time")
    print(f"true error of the right rule at m = {args.steps}: median {error.median():.1e}, largest {error.max():.1e}")
    results = {"pieces": pieces, **{name: s_.summary() for name, s_ in series.items()}, "error": error.tolist()}
    bench.write_json(args.json, "exact_ig", args, results, torch.device("cpu"))


if __name__ == "__main__":
    run_main(main)
