"""Speed of the FFHQ/StyleGAN stand-in writer and of load_folder's file check.

    python bench/bench_ffhq_standin.py                      # 300 images per class, a minute or two
    python bench/bench_ffhq_standin.py --per-class 70000    # the full-size stand-in

Prints images/s for: generating images in memory, writing the stand-in with one worker and
with one worker per core (the ratio is the speed-up of the process pool), and checking the
written files with load_folder's header check against decoding every file with Pillow. The CPU
time per image is printed too: on a busy machine it is steadier than images/s.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import util  # noqa: E402


def rate(count, seconds):
    return count / max(seconds, 1e-9)


def cpu_seconds():
    """CPU time of this process and its finished children: comparable on a busy machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=util.positive_int, default=300, help="images per folder (default: 300)")
    parser.add_argument(
        "--workers", type=util.positive_int, default=os.cpu_count(), help="worker processes (default: one per core)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    n = args.per_class

    weights = util.standin_generator_weights(args.seed)
    sample = min(n, 100)
    for fake in (False, True):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(sample):
            util.standin_image(args.seed, fake, i, weights)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"generate {'fakes' if fake else 'reals'} in memory, 1 process: {rate(sample, wall):.0f} images/s, "
            f"{1000 * cpu / sample:.1f} ms CPU per image"
        )

    with tempfile.TemporaryDirectory(dir=util.DATA_DIR) as tmp:
        timings = {}
        for workers in (1, args.workers):
            start, cpu = time.perf_counter(), cpu_seconds()
            out = util.make_standin(Path(tmp) / f"standin-{workers}", n, args.seed, workers=workers)
            timings[workers] = time.perf_counter() - start
            cpu = cpu_seconds() - cpu
            print(
                f"make_standin, {workers} worker(s): {rate(2 * n, timings[workers]):.0f} images/s, "
                f"{1000 * cpu / (2 * n):.1f} ms CPU per image written (all processes)"
            )
        print(f"process pool speed-up: {timings[1] / timings[args.workers]:.2f}x with {args.workers} workers")

        from PIL import Image

        folder = out / util.FAKE_FOLDER
        start = time.perf_counter()
        files = util.list_images(folder)
        check = time.perf_counter() - start
        start = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                image.convert("RGB").load()
        decode = time.perf_counter() - start
        print(
            f"check {len(files)} files: header check {rate(len(files), check):.0f} files/s, "
            f"Pillow decode {rate(len(files), decode):.0f} files/s, header check {decode / check:.0f}x faster"
        )
    print("(stand-in data; rates on a shared machine vary from run to run)")


if __name__ == "__main__":
    util.run_main(main)
