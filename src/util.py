"""Load the data of the three tasks: MNIST digits and the FFHQ/StyleGAN faces.

MNIST is read from torchvision's raw layout in data/MNIST/raw and fetched first when missing.
FFHQ/StyleGAN is a folder holding A_ffhq/ (real) and B_stylegan/ (fake), each with 128x128 RGB
PNG files; `load_folder` gives the exercise's split of one of them. The data commands
(`python -m iml mnist`, `ffhq-download`, `ffhq-standin`, `ffhq-import`) fetch or make the data.
"""

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
FFHQ_DIR = DATA_DIR / "ffhq_style_gan"
FFHQ_SOURCE_DIR = FFHQ_DIR / "source_data"
FFHQ_STANDIN_DIR = DATA_DIR / "ffhq_standin"
REAL_FOLDER = "A_ffhq"
FAKE_FOLDER = "B_stylegan"
SOURCE_FOLDERS = (REAL_FOLDER, FAKE_FOLDER)  # labels 0 (real) and 1 (fake)
FFHQ_IMAGES_PER_FOLDER = 70_000
FFHQ_SPLIT = (67_000, 1_000, 2_000)  # train, validation, test images per folder, as in the exercise
IMAGE_SIZE = 128
STANDIN_MARKER = "STANDIN.txt"


def _mnist(split: str, raw_dir: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    from iml.mnist_data import load_mnist  # reads with every check, fetches only when the files are missing

    images, labels = load_mnist(split, raw_dir)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def get_mnist_train_data(raw_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the 60,000 MNIST training digits, fetching them into data/MNIST/raw when missing.

    Args:
        raw_dir: Folder of torchvision's raw IDX files (default: data/MNIST/raw).

    Returns:
        Images uint8 (60000, 28, 28) and labels int64 (60000,).
    """
    return _mnist("train", raw_dir)


def get_mnist_test_data(raw_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the 10,000 MNIST test digits, fetching them into data/MNIST/raw when missing.

    Args:
        raw_dir: Folder of torchvision's raw IDX files (default: data/MNIST/raw).

    Returns:
        Images uint8 (10000, 28, 28) and labels int64 (10000,).
    """
    return _mnist("test", raw_dir)


def list_images(folder: str | Path, skip_unreadable: bool = False) -> list[Path]:
    """List all images of one source folder, checked and in natural order of their names.

    Natural order keeps the fakes style_gan_ffhq_example0..69999.png, which are not zero-padded,
    in numeric order on every filesystem. Hidden files (.DS_Store) are ignored; Pillow checks that
    every other file is a 128x128 8-bit RGB PNG without decoding it (iml.image_files.png_problem).

    Args:
        folder: A_ffhq or B_stylegan of a dataset.
        skip_unreadable: Leave out files that are not 128x128 8-bit RGB PNGs, with a warning on stderr.

    Returns:
        The paths.

    Raises:
        InputError: The folder is missing, no readable folder or empty, or holds another file and not `skip_unreadable`.
    """
    from iml.common import InputError, relative
    from iml.image_files import check_image_folder, empty_folder_facts, name_listing, png_problem, visible_files

    folder = Path(folder)
    check_image_folder(folder)  # missing, a file, a link loop, unreadable: each named
    names = visible_files(folder)
    if not names:
        raise InputError(*empty_folder_facts(folder, FFHQ_DIR, is_standin(folder)))
    bad = [(name, why) for name in names if (why := png_problem(folder / name)) is not None]
    if bad:
        kind = f"{IMAGE_SIZE}x{IMAGE_SIZE} RGB PNG images"
        what = f"{len(bad)} of {len(names)} files in {relative(folder)} are not {kind}"
        if not skip_unreadable:
            fix = "replace or delete them, or pass skip_unreadable=True"
            raise InputError(f"{what}: {name_listing(bad)}; {fix}", hint="skip-unreadable")
        print(f"warning: skipped {what}: {name_listing(bad)}.", file=sys.stderr)
        names = [name for name in names if name not in {name for name, _ in bad}]
    return [folder / name for name in names]


def load_folder(
    folder: str | Path, train_size: int, val_size: int, test_size: int, skip_unreadable: bool = False
) -> tuple[list[Path], list[Path], list[Path]]:
    """Split one source folder into the exercise's train, validation and test lists of PNG paths.

    The files are checked and sorted as in `list_images`; the first `train_size` train, the next
    `val_size` validate and the next `test_size` test, so the lists are disjoint and the same on
    every machine. The exercise uses 67,000 / 1,000 / 2,000 (`FFHQ_SPLIT`) of each folder's 70,000.

    Args:
        folder: A_ffhq or B_stylegan of a dataset.
        train_size: Images for training.
        val_size: Images for validation.
        test_size: Images for testing.
        skip_unreadable: Leave out files that are not 128x128 RGB PNGs instead of refusing the folder.

    Returns:
        The (train, validation, test) lists.

    Raises:
        InputError: The folder holds fewer usable images than asked for (or see `list_images`).
    """
    from iml.common import InputError, relative
    from iml.validation import check_folder_split

    train_size, val_size, test_size = check_folder_split(folder, train_size, val_size, test_size, skip_unreadable)
    files = list_images(folder, skip_unreadable)
    needed = train_size + val_size + test_size
    if len(files) < needed:
        raise InputError(
            f"{relative(folder)} holds {len(files)} usable images, fewer than the {needed} asked for "
            f"(train {train_size} + validation {val_size} + test {test_size})",
            hint="split-sizes",
        )
    return files[:train_size], files[train_size : train_size + val_size], files[train_size + val_size : needed]


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read one image file as uint8 (H, W, 3).

    Args:
        path: The image file, in any format Pillow reads.
        size: If given, the image must be size x size pixels.

    Returns:
        The pixels.

    Raises:
        InputError: The file is larger than an exercise image can be, Pillow cannot decode it, or its size is wrong.
    """
    from PIL import Image

    from iml.common import InputError, relative
    from iml.image_files import check_image_size

    check_image_size(path)
    try:
        with Image.open(path) as image:
            array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        message = f"{relative(path)} is not a readable image ({error}); delete or replace it and run again."
        raise InputError(message) from None
    if size is not None and array.shape != (size, size, 3):
        raise InputError(
            f"{relative(path)} is {array.shape[1]}x{array.shape[0]} pixels, not {size}x{size}; "
            f"every image must be a {size}x{size} RGB picture as in ffhq_style_gan."
        )
    return array


def batches(items: Sequence | torch.Tensor, batch_size: int, desc: str, unit: str) -> Iterator:
    """Hand out `items` `batch_size` at a time, behind a progress bar that counts them.

    Args:
        items: A list, or a tensor such as a random order of indices.
        batch_size: Items per batch; the last may be smaller.
        desc: What the bar says is running, e.g. "epoch 1".
        unit: What the items are, e.g. "images".

    Yields:
        The batches, slices of `items`.
    """
    from iml.progress import progress
    from iml.validation import check_count

    check_count(batch_size, "batch_size", "batches")  # a negative one would hand out nothing
    with progress(total=len(items), unit=unit, desc=desc) as bar:
        for start in range(0, len(items), batch_size):
            yield items[start : start + batch_size]
            bar.update(min(batch_size, len(items) - start))


def is_standin(path: str | Path) -> bool:
    """Tell whether `path` (a source folder, or its A_ffhq or B_stylegan) holds the synthetic stand-in.

    Args:
        path: The folder.

    Returns:
        True for stand-in data (STANDIN.txt beside or above).
    """
    path = Path(path)
    return (path / STANDIN_MARKER).is_file() or (path.parent / STANDIN_MARKER).is_file()


class WelfordEstimator:
    """Compute the running per-coefficient mean and standard deviation over batches of any size.

    Welford's update in the batched form of Chan et al.: each batch's mean and sum of squared
    deviations are merged into the running ones in float64, so only three arrays of one sample's
    shape are kept between batches.
    """

    def __init__(self) -> None:
        """Start with no data."""
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, batch: torch.Tensor) -> None:
        """Merge a batch (n, ...) into the running statistics; an empty batch changes nothing.

        Args:
            batch: Samples along the first axis, e.g. spectra (n, C, H, W).
        """
        from iml.validation import check_batch

        check_batch(batch, None if self.mean is None else self.mean.shape, "WelfordEstimator.update")
        if (n := batch.shape[0]) == 0:
            return
        # the batch's statistics in its own precision (float32 spectra: 2.5x faster), merged in float64
        batch_mean = batch.mean(dim=0)
        batch_m2 = (batch - batch_mean).square_().sum(dim=0).double()
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, batch_mean.double(), batch_m2
            return
        total = self.count + n
        delta = batch_mean.double() - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta.square_() * (self.count * n / total)
        self.count = total

    def finalize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Finish the estimation.

        Returns:
            The mean and the standard deviation (dividing by N), float64, each of one sample's shape.

        Raises:
            ValueError: `update` never saw a sample.
        """
        if self.mean is None or self.m2 is None:
            raise ValueError("no data: update() was never called")
        return self.mean, (self.m2 / self.count).sqrt()
