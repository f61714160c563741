"""Task 3 at full-dataset scale: this pipeline against the exercise's reference approach.

    python bench/bench_deepfake.py                         # 70,000 images per class, like ffhq_style_gan
    python bench/bench_deepfake.py --per-class 3000        # smaller, for a laptop or a 2-core machine
    python bench/bench_deepfake.py --data data/ffhq_style_gan/source_data   # on the real images

The images are split like the exercise (67,000 / 1,000 / 2,000 of 70,000 per class, the same
proportions when smaller). Each approach runs in a fresh child process, so its peak memory is
its own, on the same files and the same device:

- this pipeline (src/deepfake_interpretation.py): every image decoded once by --workers
  processes into a uint8 cache, log spectra in torch in batches (on the GPU when there is one),
  streaming statistics, 5 epochs on the whole training split, validation every epoch, then the
  test split, the mean-spectrum plots and the weight plots;
- the reference (the exercise's original script): PIL loading in a process pool, numpy fft2 on
  the CPU for the statistics and again for every batch of every epoch, on the first 25,000
  training images (50 batches of 500), validation every epoch.

It prints training images per second for both (decoding + statistics + 5 epochs with
validation, per training image), the speed ratio, peak resident memory, and the wall time of
the whole pipeline. The target on a 16-core H100/H200 node: the whole 140,000-image pipeline in
at most 60 seconds.
"""

import argparse
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import util  # noqa: E402

TARGET_SECONDS = 60
FULL_PER_CLASS = 70_000


def split_sizes(per_class):
    """(train, validation, test) per class in the exercise's proportions 67,000 / 1,000 / 2,000 of 70,000."""
    val = max(1, round(per_class / 70))
    test = max(1, round(2 * per_class / 70))
    return per_class - val - test, val, test


def peak_memory():
    """(this process, its largest finished child) peak resident memory in bytes (Linux reports KiB)."""
    scale = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, children


def ours(queue, data, sizes, epochs, workers, device):
    """Child process: the whole pipeline of src/deepfake_interpretation.py, timed."""
    import torch

    from deepfake_interpretation import build_parser, run

    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    with tempfile.TemporaryDirectory() as out:
        args = build_parser().parse_args(
            ["--data", str(data), "--train-size", str(sizes[0]), "--val-size", str(sizes[1])]
            + ["--test-size", str(sizes[2]), "--epochs", str(epochs), "--workers", str(workers)]
            + ["--device", device, "--out", out]
        )
        start = time.perf_counter()
        (result,) = run(args)
        total = time.perf_counter() - start
    own, children = peak_memory()
    queue.put(
        {
            "train_images": 2 * sizes[0],
            "train_seconds": result["decode_seconds"] + result["train_seconds"],
            "total_seconds": total,
            "test_accuracy": result["test_accuracy"],
            "peak": own,
            "worker_peak": children,
            "cache_bytes": 2 * sum(sizes) * 128 * 128 * 3,
        }
    )


def reference_load_image(path):
    from PIL import Image

    return np.nan_to_num(np.array(Image.open(path)), posinf=255, neginf=0)


class ReferenceWelford:
    """The reference's running mean and std, per colour channel, in numpy."""

    def __init__(self):
        self.collapsed_axis = None

    def update(self, batch):
        if not self.collapsed_axis:
            self.collapsed_axis = tuple(range(batch.ndim - 1))
            self.count = np.zeros(1)
            self.mean = np.zeros(batch.shape[-1])
            self.m2 = np.zeros(batch.shape[-1])
        self.count += np.prod(batch.shape[:-1])
        delta = batch - self.mean
        self.mean += np.sum(delta / self.count, self.collapsed_axis)
        self.m2 += np.sum(delta * (batch - self.mean), self.collapsed_axis)

    def finalize(self):
        return self.mean, np.sqrt(self.m2 / self.count)


def reference(queue, data, sizes, epochs, workers, device, images, batch_size=500):
    """Child process: the exercise's original approach on its first `images` training images."""
    from multiprocessing import Pool

    import torch
    import torch.nn.functional as F

    from deepfake_interpretation import transform

    def label(path):
        return 0 if path.parent.name == util.REAL_FOLDER else 1

    device = util.get_device(device)
    real = util.load_folder(Path(data) / util.REAL_FOLDER, *sizes)
    fake = util.load_folder(Path(data) / util.FAKE_FOLDER, *sizes)
    train = np.array(real[0] + fake[0], dtype=object)
    val = np.array(real[1] + fake[1], dtype=object)
    np.random.seed(42)  # noqa: NPY002 - as the reference script
    np.random.shuffle(train)  # noqa: NPY002
    batches = np.array_split(train, max(1, len(train) // batch_size))[: max(1, images // batch_size)]
    used = sum(len(b) for b in batches)
    start = time.perf_counter()
    estimator, image_batches, label_batches = ReferenceWelford(), [], []
    with Pool(workers) as pool:
        for paths in batches:
            stack = np.stack(pool.map(reference_load_image, paths))
            image_batches.append(stack)
            label_batches.append(np.array([label(p) for p in paths]))
            estimator.update(transform(stack))
    mean, std = (a.astype(np.float32) for a in estimator.finalize())
    val_images = transform(np.stack(list(map(reference_load_image, val))))
    val_x = torch.tensor((val_images - mean) / std, dtype=torch.float32).permute(0, 3, 1, 2).to(device)
    val_y = torch.tensor([label(p) for p in val]).to(device)
    torch.manual_seed(42)
    net = torch.nn.Linear(3 * 128 * 128, 2).to(device)
    optimizer = torch.optim.Adam(net.parameters())
    for _ in range(epochs):
        with torch.no_grad():
            (net(val_x.flatten(1)).argmax(1) == val_y).float().mean().item()
        for stack, labels in zip(image_batches, label_batches):
            x = np.transpose((transform(stack) - mean) / std, [0, 3, 1, 2])
            x = torch.tensor(x, dtype=torch.float32).to(device)
            loss = F.cross_entropy(net(x.flatten(1)), torch.tensor(labels).to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    with torch.no_grad():
        accuracy = (net(val_x.flatten(1)).argmax(1) == val_y).float().mean().item()
    seconds = time.perf_counter() - start
    own, children = peak_memory()
    queue.put(
        {
            "train_images": used,
            "train_seconds": seconds,
            "val_accuracy": accuracy,
            "peak": own,
            "worker_peak": children,
        }
    )


def in_child(target, *args):
    """Run `target(queue, *args)` in a fresh interpreter and return what it put in the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(queue, *args))
    process.start()
    result = queue.get()
    process.join()
    if process.exitcode:
        raise SystemExit(f"{target.__name__} failed with exit status {process.exitcode}")
    return result


def spectra_rates(data, device_name, count=1000):
    """Log spectra per second for numpy on the CPU and for torch on the device, same images."""
    import torch

    from deepfake_interpretation import decode_images, log_fft, transform

    files = util.load_folder(Path(data) / util.REAL_FOLDER, min(count, 100), 0, 0)[0]
    images = decode_images((files * math.ceil(count / len(files)))[:count], workers=1).numpy()
    start = time.perf_counter()
    for batch in np.array_split(images, max(1, count // 500)):
        transform(batch)
    numpy_rate = count / (time.perf_counter() - start)
    device = util.get_device(device_name)
    cached = torch.from_numpy(images).to(device)
    log_fft(cached[:10])  # warm-up (cuFFT plans)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for batch in cached.split(500):
        log_fft(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return numpy_rate, count / (time.perf_counter() - start), device


def gb(value):
    return f"{value / 1e9:.2f} GB"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--per-class",
        type=util.positive_int,
        default=FULL_PER_CLASS,
        help=f"images per class in the stand-in (default: {FULL_PER_CLASS}, the real dataset's size)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with A_ffhq/ and B_stylegan/ to use instead of a stand-in (default: a stand-in in "
        "data/ffhq_standin_bench_<per-class>, made on first use)",
    )
    parser.add_argument("--epochs", type=util.positive_int, default=5, help="training epochs (default: 5)")
    parser.add_argument(
        "--reference-images",
        type=util.positive_int,
        default=25_000,
        help="training images the reference approach uses (default: 25000, as the exercise's script)",
    )
    parser.add_argument(
        "--workers",
        type=util.positive_int,
        default=os.cpu_count(),
        help=f"decoding processes, for both approaches (default: all cores, here {os.cpu_count()})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--skip-reference", action="store_true", help="time only this pipeline (default: run both)")
    args = parser.parse_args()

    data = args.data
    if data is None:
        data = util.DATA_DIR / f"ffhq_standin_bench_{args.per_class}"
        if not data.exists():
            print(f"writing a stand-in of {args.per_class:,} images per class to {util.relative(data)} (once)")
            util.make_standin(data, args.per_class, seed=0, workers=args.workers)
    per_class = min(len(util.list_images(Path(data) / folder)) for folder in (util.REAL_FOLDER, util.FAKE_FOLDER))
    per_class = min(per_class, args.per_class)
    sizes = split_sizes(per_class)
    what = "STAND-IN data" if util.is_standin(data) else "real FFHQ/StyleGAN images"
    print(
        f"{what} in {util.relative(data)}: {per_class:,} images per class, split {sizes[0]:,} / {sizes[1]:,} / "
        f"{sizes[2]:,}; {args.workers} workers, {os.cpu_count()} cores, device {args.device}"
    )

    numpy_rate, torch_rate, device = spectra_rates(data, args.device)
    print(
        f"log spectra alone: numpy fft2 on the CPU {numpy_rate:,.0f} images/s, torch on {device} "
        f"{torch_rate:,.0f} images/s ({torch_rate / numpy_rate:.1f}x)"
    )

    mine = in_child(ours, data, sizes, args.epochs, args.workers, args.device)
    mine_rate = mine["train_images"] / mine["train_seconds"]
    print(
        f"this pipeline: {mine['train_images']:,} training images, decoding + statistics + {args.epochs} epochs "
        f"in {mine['train_seconds']:.1f} s = {mine_rate:,.0f} images/s; peak memory {gb(mine['peak'])} "
        f"(uint8 cache {gb(mine['cache_bytes'])}, so {gb(mine['peak'] - mine['cache_bytes'])} besides it), "
        f"largest decoding worker {gb(mine['worker_peak'])}; test accuracy {mine['test_accuracy']:.2%}"
    )
    if not args.skip_reference:
        ref = in_child(reference, data, sizes, args.epochs, args.workers, args.device, args.reference_images)
        ref_rate = ref["train_images"] / ref["train_seconds"]
        print(
            f"reference:     {ref['train_images']:,} training images, decoding + statistics + {args.epochs} epochs "
            f"in {ref['train_seconds']:.1f} s = {ref_rate:,.0f} images/s; peak memory {gb(ref['peak'])}, "
            f"largest pool worker {gb(ref['worker_peak'])}; validation accuracy {ref['val_accuracy']:.2%}"
        )
        print(
            f"speed ratio (images/s, this pipeline / reference): {mine_rate / ref_rate:.1f}x; peak memory "
            f"{gb(mine['peak'])} for {mine['train_images']:,} training images vs {gb(ref['peak'])} for "
            f"{ref['train_images']:,}"
        )
    images = 2 * sum(sizes)
    verdict = ""
    if per_class == FULL_PER_CLASS and device.type == "cuda":
        verdict = " - target met" if mine["total_seconds"] <= TARGET_SECONDS else " - TARGET MISSED"
    print(
        f"whole pipeline (decode, spectra, mean plots, {args.epochs} epochs, test, weight plots) on {images:,} "
        f"images: {mine['total_seconds']:.1f} s (target on a 16-core H100/H200 node with 140,000 images: "
        f"<= {TARGET_SECONDS} s){verdict}"
    )


if __name__ == "__main__":
    main()
