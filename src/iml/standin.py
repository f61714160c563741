"""The synthetic stand-in for FFHQ/StyleGAN: "real" and "fake" images in the layout and format of
ffhq_style_gan/source_data, made offline, for running Task 3 where the real data cannot be had.

The "reals" are dead-leaves pictures, which share the power spectrum of photographs; the "fakes"
are made the way GAN generators make images, by upsampling with a transposed convolution, which
leaves periodic traces at high frequencies (Durall et al. 2020, "Watch your Up-Convolution",
arXiv:2003.01826; dead leaves: Lee, Mumford and Huang 2001, "Occlusion models for natural images"). Every figure and log line of Task 3 says when it
shows stand-in data. `python -m iml ffhq-standin` writes it.
"""

import os
from pathlib import Path

import numpy as np

from iml.common import InputError, folder_in_place, relative, require_free_space, write_lock
from iml.image_files import fake_name, real_name
from iml.processes import parallel_map
from util import FAKE_FOLDER, IMAGE_SIZE, REAL_FOLDER, STANDIN_MARKER


def ragged_arange(lengths):
    """0, 1, ..., n - 1 for each n in `lengths`, one after another: [2, 3] -> [0, 1, 0, 1, 2] (int32)."""
    starts = np.cumsum(lengths) - lengths
    return np.arange(lengths.sum(), dtype=np.int32) - np.repeat(starts, lengths).astype(np.int32)


def front_disks(cx, cy, r, size):
    """For each pixel of a size x size picture, the first of the disks (centres cx, cy, radii r)
    that covers its centre, or len(r) where none does: int32 (size * size,). Vectorised over disks."""
    count = len(r)
    # the rows each disk covers (pixel centres at y + 0.5), then each row's span of pixels
    y0 = np.clip(np.ceil(cy - r - 0.5), 0, size).astype(np.int32)
    y1 = np.clip(np.floor(cy + r - 0.5), -1, size - 1).astype(np.int32)
    rows = np.maximum(y1 - y0 + 1, 0)
    row_disk = np.repeat(np.arange(count, dtype=np.int32), rows)
    y = y0[row_disk] + ragged_arange(rows)
    dy = y + np.float32(0.5) - cy[row_disk]
    half = np.sqrt(np.maximum(r[row_disk] ** 2 - dy * dy, 0))
    x0 = np.clip(np.ceil(cx[row_disk] - half - 0.5), 0, size).astype(np.int32)
    x1 = np.clip(np.floor(cx[row_disk] + half - 0.5), -1, size - 1).astype(np.int32)
    length = np.maximum(x1 - x0 + 1, 0)
    # every (disk, covered pixel) pair, vectorised; disk 0 is in front
    disk = np.repeat(row_disk, length)
    pixel = np.repeat(y * size + x0, length) + ragged_arange(length)
    front = np.full(size * size, count, dtype=np.int32)  # count = no disk: background
    np.minimum.at(front, pixel, disk)
    return front


def dead_leaves(rng, size=IMAGE_SIZE, rmin=1.5, rmax=80.0, coverage=7.0):
    """A dead-leaves picture, float32 (size, size, 3) in [0, 1], with the statistics of natural images.

    Opaque disks fall on top of each other; their radii follow p(r) ~ r^-3 between `rmin` and
    `rmax`, the scale-invariant law that makes the power spectrum fall about as 1/f^2, like
    photographs. Each leaf has its own colour, a shading gradient and sometimes a fine stripe
    texture; `coverage` (total disk area / image area) sets how few background pixels remain.
    """
    count = int(coverage * size * size / (2 * np.pi * rmin**2 * np.log(rmax / rmin)))
    u = rng.random(count, dtype=np.float32)
    r = (rmin**-2 - u * (rmin**-2 - rmax**-2)) ** -0.5  # inverse CDF of p(r) ~ r^-3
    cx = rng.random(count, dtype=np.float32) * size
    cy = rng.random(count, dtype=np.float32) * size
    front = front_disks(cx, cy, r, size)  # (size * size,) index of the visible disk, `count` = none

    # appearance of each leaf (index `count` is the background)
    palette = rng.beta(2.0, 2.5, (6, 1)) * (1 + rng.normal(0, 0.25, (6, 3)))  # a few colours per scene
    color = palette[rng.integers(0, 6, count + 1)] * (1 + rng.normal(0, 0.08, (count + 1, 1)))
    shade = rng.normal(0, 0.12, (count + 1, 2)) / np.append(r, size)[:, None]
    striped = rng.random(count + 1) < 0.3
    stripe_amp = striped * rng.uniform(0.02, 0.1, count + 1)
    angle = rng.uniform(0, np.pi, count + 1)
    freq = 2 * np.pi * rng.uniform(0.05, 0.3, count + 1)  # radians per pixel
    stripe_kx, stripe_ky = freq * np.cos(angle), freq * np.sin(angle)
    phase = rng.uniform(0, 2 * np.pi, count + 1)
    center_x, center_y = np.append(cx, size / 2), np.append(cy, size / 2)

    ys, xs = np.divmod(np.arange(size * size), size)
    px, py = xs + 0.5 - center_x[front], ys + 0.5 - center_y[front]
    light = 1 + shade[front, 0] * px + shade[front, 1] * py
    light += stripe_amp[front] * np.sin(stripe_kx[front] * px + stripe_ky[front] * py + phase[front])
    image = color[front] * light[:, None]  # (size*size, 3)
    return np.clip(image, 0, 1).reshape(size, size, 3).astype(np.float32)


def _conv3x3(x, weight):
    """Convolution with reflect padding: x (C, H, W), weight (C_out, C, 3, 3) -> (C_out, H, W)."""
    h, w = x.shape[1:]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    out = np.zeros((weight.shape[0], h, w), dtype=np.float32)
    for ky in range(3):
        for kx in range(3):
            out += np.einsum("oi,ihw->ohw", weight[:, :, ky, kx], padded[:, ky : ky + h, kx : kx + w])
    return out


def standin_generator_weights(seed):
    """The fixed weights of the stand-in "generator", one set per dataset seed.

    Each layer is a smooth kernel plus a small random perturbation, like the kernels a trained
    generator ends up with: close to smooth, but not exactly.
    """
    rng = np.random.default_rng((seed, 1000))
    eye = np.eye(3)[:, :, None, None]
    delta = np.outer([0, 1, 0], [0, 1, 0])
    binomial = np.outer([1, 2, 1], [1, 2, 1]) / 16
    bilinear = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])
    sharpen = eye * (delta + 0.3 * (delta - binomial)) + rng.normal(0, 0.02, (3, 3, 3, 3))
    sharpen /= sharpen.sum(axis=(1, 2, 3), keepdims=True)
    up = eye * bilinear + rng.normal(0, 0.025, (3, 3, 3, 3))
    up *= 4 / up.sum(axis=(1, 2, 3), keepdims=True)  # sum 4: a stride-2 transposed conv keeps the mean
    conv = eye * (delta + 0.3 * (delta - binomial)) + rng.normal(0, 0.02, (3, 3, 3, 3))
    conv /= conv.sum(axis=(1, 2, 3), keepdims=True)
    noise = rng.uniform(0.004, 0.012, (3, 3))  # per-layer, per-channel noise strength
    weights = {"sharpen": sharpen, "up": up, "conv": conv, "noise": noise}
    return {name: value.astype(np.float32) for name, value in weights.items()}


def standin_fake(rng, weights, size=IMAGE_SIZE):
    """A stand-in "fake", float32 (size, size, 3): made the way GAN generators make images.

    Content at half the resolution (a dead-leaves picture averaged down to (size + 2) / 2 pixels
    a side) passes a convolution, is brought up to size + 2 by a stride-2 transposed convolution,
    and passes another convolution, with per-pixel noise added after each layer as in StyleGAN.
    The upsampling leaves periodic traces at high frequencies, as in real GAN images. The fake is
    the size x size crop at a random offset of 0 or 1 pixel in each direction, so the upsampling
    grid has a random phase: the traces sit at different pixels in different fakes (as the content
    of real fakes does), while their magnitude spectrum, which ignores shifts, keeps them.
    """
    big = size + 2
    dy, dx = rng.integers(0, 2, 2)
    low = dead_leaves(rng, big).reshape(big // 2, 2, big // 2, 2, 3).mean(axis=(1, 3))
    x = low.transpose(2, 0, 1)  # (3, 65, 65)
    x = _conv3x3(x, weights["sharpen"])
    x += weights["noise"][0][:, None, None] * rng.standard_normal(x.shape, dtype=np.float32)
    zeros = np.zeros((3, 2 * x.shape[1], 2 * x.shape[2]), dtype=np.float32)
    zeros[:, ::2, ::2] = x  # a transposed convolution = zero insertion + convolution
    x = _conv3x3(zeros, weights["up"])  # (3, 130, 130)
    x += weights["noise"][1][:, None, None] * rng.standard_normal(x.shape, dtype=np.float32)
    x = _conv3x3(x, weights["conv"])
    x += weights["noise"][2][:, None, None] * rng.standard_normal(x.shape, dtype=np.float32)
    x = x[:, dy : dy + size, dx : dx + size]  # (3, 128, 128), the grid shifted by (dy, dx)
    return np.clip(x.transpose(1, 2, 0), 0, 1)


def standin_real(rng, size=IMAGE_SIZE):
    """A stand-in "real" image, float32 (size, size, 3): a dead-leaves picture through a camera
    (slight optical blur and sensor noise)."""
    image = dead_leaves(rng, size)
    blur = np.array([0.15, 0.7, 0.15], dtype=np.float32)
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    image = sum(blur[i] * padded[i : i + size] for i in range(3))
    image = sum(blur[i] * image[:, i : i + size] for i in range(3))
    image += np.float32(0.006) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 1)


def standin_image(seed, fake, index, weights=None):
    """Stand-in image `index` of one class as uint8 (128, 128, 3); the same for the same arguments."""
    rng = np.random.default_rng((seed, int(fake), index))
    if fake:
        image = standin_fake(rng, standin_generator_weights(seed) if weights is None else weights)
    else:
        image = standin_real(rng)
    return np.round(image * 255).astype(np.uint8)


def _write_standin_chunk(job):
    from PIL import Image

    root, fake, start, stop, seed = job
    weights = standin_generator_weights(seed)
    folder, name = (root / FAKE_FOLDER, fake_name) if fake else (root / REAL_FOLDER, real_name)
    for index in range(start, stop):
        Image.fromarray(standin_image(seed, fake, index, weights)).save(folder / name(index), compress_level=1)
    return stop - start


def make_standin(out_dir, per_class, seed=0, workers=None, force=False, provenance=None):
    """Write a synthetic stand-in for ffhq_style_gan/source_data into `out_dir`; returns `out_dir`.

    out_dir/A_ffhq holds `per_class` "real" dead-leaves images, out_dir/B_stylegan as many
    "fakes" from the upsampling generator, named and formatted like the real data (128x128 RGB
    PNG); out_dir/STANDIN.txt marks it as stand-in data (`provenance`: how it was made). The
    same for a seed, whatever the number of worker processes. Written into a hidden folder
    renamed into place when complete, under the lock on writing `out_dir` (`write_lock`: a second
    run at the same time fails at once). Raises InputError (hint "force") if `out_dir` exists
    and not `force`, and if the disk lacks space or another run is writing `out_dir`.
    """
    out_dir = Path(out_dir)
    workers = max(1, min(workers or os.cpu_count() or 1, 2 * per_class))
    with write_lock(out_dir):
        if out_dir.exists() and not force:
            raise InputError(f"{relative(out_dir)} already exists", hint="force")
        require_free_space(out_dir.parent, 2 * per_class * 60_000, f"writing {2 * per_class} stand-in images")
        with folder_in_place(out_dir) as tmp:
            for folder in (REAL_FOLDER, FAKE_FOLDER):
                (tmp / folder).mkdir()
            write_standin_images(tmp, per_class, seed, workers)
            (tmp / STANDIN_MARKER).write_text(standin_description(per_class, seed, provenance))
    return out_dir


def write_standin_images(folder, per_class, seed, workers):
    """Write both classes' images into `folder`, in chunks spread over `workers` processes."""
    from iml.progress import progress

    chunk = max(1, min(500, -(-per_class // (4 * workers))))
    jobs = [
        (folder, fake, start, min(start + chunk, per_class), seed)
        for fake in (False, True)
        for start in range(0, per_class, chunk)
    ]
    with progress(total=2 * per_class, unit="images", desc="writing the stand-in") as bar:
        for done in parallel_map(_write_standin_chunk, jobs, workers):  # Ctrl-C: the parent cleans up
            bar.update(done)


def standin_description(per_class, seed, provenance=None):
    """The text of STANDIN.txt, which marks a folder as stand-in data and says how it was made."""
    made = f"written by `{provenance}`" if provenance else f"{per_class} images per class, seed {seed}"
    return (
        "STAND-IN DATA, not FFHQ/StyleGAN: synthetic images in the layout of ffhq_style_gan/source_data,\n"
        f"{made}.\n"
        f"{REAL_FOLDER}/: 'real' dead-leaves pictures (natural-image statistics, power spectrum ~ 1/f^2).\n"
        f"{FAKE_FOLDER}/: 'fakes' from half-resolution content upsampled 2x by a transposed convolution between\n"
        "convolutions, with noise after each layer, as GAN generators do; each cropped at a random 0/1-pixel\n"
        "offset, so the upsampling grid has a random phase.\n"
    )
