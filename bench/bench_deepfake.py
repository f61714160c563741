"""Task 3 at full-dataset scale: this pipeline against the exercise's reference approach.

    python bench/bench_deepfake.py                         # 70,000 images per class, like ffhq_style_gan
    python bench/bench_deepfake.py --per-class 3000        # smaller, for a laptop or a 2-core machine
    python bench/bench_deepfake.py --data data/ffhq_style_gan/source_data   # on the real images

The images are split like the exercise (67,000 / 1,000 / 2,000 of 70,000 per class, the same
proportions when smaller). Each approach runs in a fresh child process, so its peak memory is
its own, on the same files and the same device; with --repeats they alternate:

- this pipeline (src/deepfake_interpretation.py --fast, the twin in src/iml/detector.py): every image decoded once by --workers
  processes into a uint8 cache, log spectra in torch in batches (on the GPU when there is one),
  streaming statistics, 5 epochs on the whole training split, validation every epoch, then the
  test split, the mean-spectrum plots and the weight plots;
- the reference (the exercise's original script, in bench/deepfake_reference.py): PIL loading
  in a process pool, numpy fft2 on the CPU for the statistics and again for every batch of
  every epoch, on the first 25,000 training images (50 batches of 500), validation every epoch.

It prints training images per second for both (decoding + statistics + 5 epochs with
validation, per training image) with the wall and CPU time (the child and its workers), the
speed ratio per repeat, peak resident memory, and the wall and CPU time of the whole pipeline;
several repeats as the median and range. The target on a 16-core H100/H200 node: the whole
140,000-image pipeline in at most 60 seconds.
"""

import argparse
import multiprocessing
import queue as queues
import tempfile
import time
from pathlib import Path

import common_bench as bench
import numpy as np
from deepfake_reference import reference

from iml.cli import UserError, positive_int, run_main
from iml.common import DATA_DIR, default_workers, get_device, relative, synchronize
from iml.standin import make_standin
from util import FAKE_FOLDER, IMAGE_SIZE, REAL_FOLDER, is_standin, list_images, load_folder

TARGET_SECONDS = 60
FULL_PER_CLASS = 70_000


def split_sizes(per_class):
    """(train, validation, test) per class in the exercise's proportions 67,000 / 1,000 / 2,000 of 70,000."""
    val = max(1, round(per_class / 70))
    test = max(1, round(2 * per_class / 70))
    return per_class - val - test, val, test


def mark_phases(twin, script):
    """Note (wall, CPU) seconds when `twin.load_splits` and `script.plot` are first called.

    From the one to the other, run() decodes, computes the statistics, trains and tests: the
    training phase, timed in wall and CPU time alike.
    """
    marks = {}

    def noted(name, original):
        def call(*args, **kwargs):
            marks.setdefault(name, (time.perf_counter(), bench.cpu_seconds()))
            return original(*args, **kwargs)

        return call

    for module, name in ((twin, "load_splits"), (script, "plot")):
        setattr(module, name, noted(name, getattr(module, name)))
    return marks


def ours(queue, data, sizes, epochs, workers, device):
    """Child process: `python src/deepfake_interpretation.py --fast` (the twin), timed (wall, and CPU with its workers)."""
    import torch

    import deepfake_interpretation
    from deepfake_interpretation import build_parser, run
    from iml import detector

    torch.set_num_threads(default_workers())
    marks = mark_phases(detector, deepfake_interpretation)
    with tempfile.TemporaryDirectory() as out:
        args = build_parser().parse_args(
            ["--data", str(data), "--train-size", str(sizes[0]), "--val-size", str(sizes[1])]
            + ["--test-size", str(sizes[2]), "--epochs", str(epochs), "--workers", str(workers)]
            + ["--device", device, "--out", out, "--fast"]
        )
        result, timing = bench.measure(lambda: run(args))
    (wall, cpu), (wall_end, cpu_end) = marks["load_splits"], marks["plot"]
    queue.put(
        {
            "train_images": 2 * sizes[0],
            "train_seconds": wall_end - wall,
            "train_cpu_seconds": cpu_end - cpu,
            "total_seconds": timing.wall,
            "total_cpu_seconds": timing.cpu,
            "test_accuracy": (result["test"].trace() / result["test"].sum()).item(),
            "cache_bytes": 2 * sum(sizes) * IMAGE_SIZE * IMAGE_SIZE * 3,
            **bench.peak_memory(),
        }
    )


def in_child(target, *args):
    """Run `target(queue, *args)` in a fresh interpreter and return what it put in the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(queue, *args))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1)
            break
        except queues.Empty:
            if not process.is_alive():
                raise UserError(f"{target.__name__} failed with exit status {process.exitcode}") from None
    process.join()
    return result


def spectra_rates(data, device_name, repeats, count=1000):
    """Log spectra per second, numpy on the CPU against torch on the device, alternating on the same images."""
    import torch

    from deepfake_interpretation import transform
    from iml.face_cache import decode_images
    from iml.spectra import log_fft

    files = load_folder(Path(data) / REAL_FOLDER, min(count, 100), 0, 0)[0]
    images = decode_images((files * -(-count // len(files)))[:count], workers=1).numpy()
    device = get_device(device_name)
    cached = torch.from_numpy(images).to(device)
    log_fft(cached[:10])  # warm-up (cuFFT plans)
    synchronize(device)
    contenders = {
        "numpy": lambda: [transform(batch) for batch in np.array_split(images, max(1, count // 500))],
        "torch": lambda: [log_fft(batch) for batch in cached.split(500)],
    }
    series, _ = bench.alternate(contenders, repeats, device)
    speed_up = bench.ratios(series["numpy"].wall, series["torch"].wall)
    print(
        f"log spectra alone ({bench.repeats_note(repeats)}): numpy fft2 on the CPU "
        f"{bench.fmt_series(series['numpy'], count, 'images/s')}; torch on {device} "
        f"{bench.fmt_series(series['torch'], count, 'images/s')}; torch / numpy {bench.fmt(speed_up, 'x', '.1f')}"
    )
    results = {
        name: {**s.summary(), "images_per_s": bench.stats(bench.rates(count, s.wall))} for name, s in series.items()
    }
    return {**results, "speedup": bench.stats(speed_up)}, device


def gb(value):
    return f"{value / 1e9:.2f} GB"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--per-class",
        type=positive_int,
        default=FULL_PER_CLASS,
        help=f"images per class in the stand-in, at most (default: {FULL_PER_CLASS}, the real dataset's size)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with A_ffhq/ and B_stylegan/ to use instead of a stand-in (default: a stand-in in "
        "data/ffhq_standin_bench_<per-class>, made on first use)",
    )
    parser.add_argument("--epochs", type=positive_int, default=5, help="training epochs (default: 5)")
    parser.add_argument(
        "--reference-images",
        type=positive_int,
        default=25_000,
        help="training images the reference approach uses (default: 25000, as the exercise's script)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_workers(),
        help=f"decoding processes, for both approaches (default: all cores, here {default_workers()})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--repeats", type=positive_int, default=1, help="runs of each approach (default: 1)")
    parser.add_argument("--skip-reference", action="store_true", help="time only this pipeline (default: run both)")
    bench.add_json_argument(parser)
    return parser


def prepare_data(args):
    """(data folder, images per class, split sizes), writing a stand-in first when no --data is given."""
    data = args.data
    if data is None:
        data = DATA_DIR / f"ffhq_standin_bench_{args.per_class}"
        if not data.exists():
            print(f"writing a stand-in of {args.per_class:,} images per class to {relative(data)} (once)")
            made_by = f"bench/bench_deepfake.py --per-class {args.per_class}"
            make_standin(data, args.per_class, seed=0, workers=args.workers, provenance=made_by)
    per_class = min(len(list_images(Path(data) / folder)) for folder in (REAL_FOLDER, FAKE_FOLDER))
    per_class = min(per_class, args.per_class)
    sizes = split_sizes(per_class)
    what = "STAND-IN data" if is_standin(data) else "real FFHQ/StyleGAN images"
    print(
        f"{what} in {relative(data)}: {per_class:,} images per class, split {sizes[0]:,} / {sizes[1]:,} / "
        f"{sizes[2]:,}; {args.workers} workers, {default_workers()} cores, device {args.device}"
    )
    return data, per_class, sizes


def column(runs, key):
    """The values of `key` over a list of result dicts."""
    return [run[key] for run in runs]


def report_ours(runs, epochs):
    """Print this pipeline's numbers over its runs; returns them for JSON."""
    last, rates = runs[-1], bench.rates(runs[-1]["train_images"], column(runs, "train_seconds"))
    print(
        f"this pipeline: {last['train_images']:,} training images, decoding + statistics + {epochs} epochs + test "
        f"in {bench.fmt(column(runs, 'train_seconds'), 's', '.1f')}, CPU "
        f"{bench.fmt(column(runs, 'train_cpu_seconds'), 's', '.1f')} = {bench.fmt(rates, 'images/s', ',.0f')}; "
        f"peak memory {gb(last['peak'])} (uint8 cache {gb(last['cache_bytes'])}, so "
        f"{gb(last['peak'] - last['cache_bytes'])} besides it), largest decoding worker {gb(last['worker_peak'])}; "
        f"test accuracy {last['test_accuracy']:.2%}"
    )
    keys = (
        "train_seconds",
        "train_cpu_seconds",
        "total_seconds",
        "total_cpu_seconds",
        "test_accuracy",
        "peak",
        "worker_peak",
    )
    return {"train_images": last["train_images"], "images_per_s": bench.stats(rates)} | {
        key: bench.stats(column(runs, key)) for key in keys
    }


def report_reference(runs, mine, epochs):
    """Print the reference's numbers and the per-repeat speed ratio; returns them for JSON."""
    last, rates = runs[-1], bench.rates(runs[-1]["train_images"], column(runs, "train_seconds"))
    print(
        f"reference:     {last['train_images']:,} training images, decoding + statistics + {epochs} epochs "
        f"in {bench.fmt(column(runs, 'train_seconds'), 's', '.1f')}, CPU "
        f"{bench.fmt(column(runs, 'train_cpu_seconds'), 's', '.1f')} = {bench.fmt(rates, 'images/s', ',.0f')}; "
        f"peak memory {gb(last['peak'])}, largest pool worker {gb(last['worker_peak'])}; "
        f"validation accuracy {last['val_accuracy']:.2%}"
    )
    ratio = bench.ratios(bench.rates(mine[-1]["train_images"], column(mine, "train_seconds")), rates)
    print(
        f"speed ratio (images/s, this pipeline / reference, per repeat): {bench.fmt(ratio, 'x', '.1f')}; peak memory "
        f"{gb(mine[-1]['peak'])} for {mine[-1]['train_images']:,} training images vs {gb(last['peak'])} for "
        f"{last['train_images']:,}"
    )
    keys = ("train_seconds", "train_cpu_seconds", "val_accuracy", "peak", "worker_peak")
    return {
        "train_images": last["train_images"],
        "images_per_s": bench.stats(rates),
        "speed_ratio": bench.stats(ratio),
    } | {key: bench.stats(column(runs, key)) for key in keys}


def main():
    args = build_parser().parse_args()
    data, per_class, sizes = prepare_data(args)
    results = {"per_class": per_class, "split": sizes}
    results["spectra"], device = spectra_rates(data, args.device, max(3, args.repeats))
    mine, ref = [], []
    for _ in range(args.repeats):
        mine.append(in_child(ours, data, sizes, args.epochs, args.workers, args.device))
        if not args.skip_reference:
            ref.append(in_child(reference, data, sizes, args.epochs, args.workers, args.device, args.reference_images))
    results["ours"] = report_ours(mine, args.epochs)
    if ref:
        results["reference"] = report_reference(ref, mine, args.epochs)
    total, cpu = column(mine, "total_seconds"), column(mine, "total_cpu_seconds")
    met = bench.stats(total)["median"] <= TARGET_SECONDS
    verdict = (
        (" - target met" if met else " - TARGET MISSED")
        if per_class == FULL_PER_CLASS and device.type == "cuda"
        else ""
    )
    print(
        f"whole pipeline (decode, spectra, mean plots, {args.epochs} epochs, test, weight plots) on {2 * sum(sizes):,} "
        f"images: {bench.fmt(total, 's', '.1f')} wall, {bench.fmt(cpu, 's', '.1f')} CPU (target on a 16-core "
        f"H100/H200 node with 140,000 images: <= {TARGET_SECONDS} s){verdict}"
    )
    bench.write_json(args.json, "deepfake", args, results, device)


if __name__ == "__main__":
    run_main(main)
