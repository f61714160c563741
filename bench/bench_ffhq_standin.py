"""Speed of the FFHQ/StyleGAN stand-in writer and of load_folder's file check.

    python bench/bench_ffhq_standin.py                      # 300 images per class, a minute or two
    python bench/bench_ffhq_standin.py --per-class 70000 --repeats 1    # the full-size stand-in

Prints, as wall time and CPU time (this process and its worker processes), the median and range
over `--repeats` alternating runs: generating reals and fakes in memory; writing the stand-in
(standin.make_standin) with one worker against one worker per core, whose ratio, per repeat, is
the speed-up of the process pool; and checking the written files with util.list_images' check
(Pillow reads each header lazily and verifies every chunk's checksum, iml.image_files.png_problem)
against decoding every file with Pillow. On a busy machine the CPU time per image is steadier
than images/s.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import common_bench as bench

from iml.cli import positive_int, run_main
from iml.common import DATA_DIR, default_workers
from iml.standin import make_standin, standin_generator_weights, standin_image
from util import FAKE_FOLDER, list_images


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=positive_int, default=300, help="images per folder (default: 300)")
    parser.add_argument(
        "--workers", type=positive_int, default=default_workers(), help="worker processes (default: one per core)"
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bench.add_json_argument(parser)
    return parser


def per_image(series, count):
    """'N images/s [..]; X ms CPU per image [..]' of a Series over `count` images per call."""
    cpu_ms = [1000 * c / count for c in series.cpu]
    return f"{bench.fmt(bench.rates(count, series.wall), 'images/s', ',.0f')}; {bench.fmt(cpu_ms, 'ms CPU per image', '.1f')}"


def summary(series, count):
    """A Series' numbers for JSON, with the rate per second."""
    return {**series.summary(), "per_s": bench.stats(bench.rates(count, series.wall))}


def generate(args):
    """Generate reals and fakes in memory, one process; prints and returns the numbers."""
    weights = standin_generator_weights(args.seed)
    sample = min(args.per_class, 100)

    def images(fake):
        return lambda: [standin_image(args.seed, fake, i, weights) for i in range(sample)]

    series, _ = bench.alternate({"reals": images(False), "fakes": images(True)}, args.repeats)
    for name, s in series.items():
        print(f"generate {name} in memory, 1 process: {per_image(s, sample)}")
    return {name: summary(s, sample) for name, s in series.items()}


def write(args, tmp):
    """Write the stand-in with 1 and with --workers processes, alternating; returns (numbers, last folder)."""
    count = 2 * args.per_class
    names = {1: "1 worker", args.workers: f"{args.workers} workers"}
    contenders = {
        name: (lambda w=w: make_standin(Path(tempfile.mkdtemp(dir=tmp)) / "standin", args.per_class, args.seed, w))
        for w, name in names.items()
    }

    def remove(values):
        for out in values.values():
            shutil.rmtree(out.parent)

    series, values = bench.alternate(contenders, args.repeats, between=remove)
    for name, s in series.items():
        print(f"make_standin, {name}: {per_image(s, count)} written (all processes)")
    results = {name: summary(s, count) for name, s in series.items()}
    if len(names) > 1:
        one, many = (series[name] for name in names.values())
        speed_up = bench.ratios(one.wall, many.wall)
        print(f"process pool speed-up: {bench.fmt(speed_up, 'x')} with {args.workers} workers (per repeat)")
        results["pool_speedup"] = bench.stats(speed_up)
    return results, values[names[args.workers]]


def check(args, folder):
    """util.list_images' check (header and checksums, no decoding) against Pillow decoding every file; prints and
    returns the numbers."""
    from PIL import Image

    files = list_images(folder)

    def decode():
        for path in files:
            with Image.open(path) as image:
                image.convert("RGB").load()

    series, _ = bench.alternate({"header check": lambda: list_images(folder), "Pillow decode": decode}, args.repeats)
    for name, s in series.items():
        print(f"check {len(files)} files, {name}: {per_image(s, len(files))}")
    faster = bench.ratios(series["Pillow decode"].wall, series["header check"].wall)
    print(f"header check {bench.fmt(faster, 'x', '.0f')} faster than decoding (per repeat)")
    results = {name.replace(" ", "_"): summary(s, len(files)) for name, s in series.items()}
    return {**results, "header_check_speedup": bench.stats(faster)}


def main():
    args = build_parser().parse_args()
    print(f"{args.per_class} images per class, {args.workers} workers; {bench.repeats_note(args.repeats)}")
    results = {"generate": generate(args)}
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix=".bench-standin-") as tmp:
        results["write"], out = write(args, tmp)
        results["check"] = check(args, out / FAKE_FOLDER)
    print("(stand-in data; rates on a shared machine vary from run to run)")
    bench.write_json(args.json, "ffhq_standin", args, results)


if __name__ == "__main__":
    run_main(main)
