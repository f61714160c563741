"""Bring any two folders of face pictures into the exercise's layout, so Task 3 runs on them.

    python -m iml ffhq-import --real ../shared/data/faces/real --fake ../shared/data/faces/fake \\
        --out data/faces
    python src/deepfake_interpretation.py --data data/faces --train-size 150 --val-size 20 --test-size 30

Every file Pillow can open (JPEG, PNG, WebP, BMP, TIFF, ...; any size and mode) is turned upright
by its EXIF orientation, converted to 8-bit RGB, cropped to its largest centred square and
resized to 128 x 128 pixels with a named resampling filter. The results are written as PNG files
under the exercise's names, OUT/A_ffhq/00000.png, ... for the reals and
OUT/B_stylegan/style_gan_ffhq_example0.png, ... for the fakes, and OUT/MANIFEST.csv says for
every file where it came from and what was done to it.

The filter is not a detail. Nearest-neighbour sampling (Pillow's default for Image.resize before
Pillow 7) keeps every second pixel and folds the upper half of the spectrum back onto the lower
half (aliasing); Lanczos filters that half out first. A detector that reads spectra sees the
difference at once, whatever the pictures show: `python -m iml resampling-study` measures how
much.
"""

import csv
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from iml.common import InputError, file_problem, folder_in_place, relative, require_free_space, write_lock
from iml.file_limits import size_problem
from iml.image_files import IMPORT_MANIFEST as MANIFEST
from iml.image_files import fake_name, name_listing, real_name, visible_files
from iml.processes import parallel_map
from iml.progress import progress, write_line
from util import FAKE_FOLDER, IMAGE_SIZE, REAL_FOLDER

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# A manifest row takes about 120 bytes (a long source path 4 KB): 64 MiB lists over 500,000
# pictures, and reading it costs about three times its size.
MAX_MANIFEST_BYTES = 64 * 2**20
# Pillow decodes at most 89 million pixels of an untrusted file: 716 MB even at 8 bytes a pixel.
MAX_PICTURE_BYTES = 2**30
MANIFEST_COLUMNS = ("file", "class", "source", "format", "width", "height", "mode", "orientation", "crop_box", "filter")
ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held; 1 is upright
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # and 32-bit integer grey


class ImageProblem(ValueError):
    """Why one file cannot become an exercise image; `kind` is "unreadable" or "small"."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind


def center_square(width, height):
    """The largest centred square of a width x height picture: (left, upper, right, lower) in pixels."""
    side = min(width, height)
    left, upper = (width - side) // 2, (height - side) // 2
    return left, upper, left + side, upper + side


def to_rgb(image):
    """An 8-bit RGB copy of a Pillow image of any mode.

    Pillow's convert("RGB") clips values above 255, which would turn a 16-bit picture white, and
    keeps floats in [0, 1] as 0 or 1, which turns them black. So 16-bit grey (I;16) is scaled by
    255/65535; 32-bit integer (I) and float (F) grey by the range their values show: [0, 1] ->
    x 255, up to 255 -> as they are, up to 65535 -> x 255/65535. Alpha is dropped, as
    convert("RGB") does: the colours under it are kept. Raises ValueError for other ranges.
    """
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else grey.max(initial=0.0)
        scale = next((full for limit, full in ((1.0, 1.0), (255.0, 255.0), (65535.0, 65535.0)) if top <= limit), None)
        if scale is None or grey.min(initial=0.0) < 0 or not np.isfinite(grey).all():
            raise ValueError(f"{image.mode} values from {grey.min():g} to {grey.max():g} have no known 8-bit meaning")
        image = Image.fromarray(np.rint(grey.clip(0, scale) * (255 / scale)).astype(np.uint8), mode="L")
    return image.convert("RGB")


def face_square(path, size=IMAGE_SIZE, resample="lanczos", allow_upscale=False):
    """One picture as an exercise image: (PIL RGB image size x size, facts about it for the manifest).

    Upright by EXIF orientation, 8-bit RGB (`to_rgb`), cropped to `centre_square`, resized with
    the filter named `resample` (a key of RESAMPLING). Raises ImageProblem("unreadable", why)
    when Pillow cannot decode the whole file, and ImageProblem("small", why) when the square is
    smaller than `size` and not `allow_upscale`.
    """
    if (problem := size_problem(path, MAX_PICTURE_BYTES, "of the largest picture Pillow decodes")) is not None:
        raise ImageProblem("unreadable", problem)
    try:
        with warnings.catch_warnings():
            # above Pillow's limit for untrusted files (89 million pixels) a picture is refused, not decoded
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                facts = {"format": image.format, "width": image.width, "height": image.height, "mode": image.mode}
                facts["orientation"] = image.getexif().get(ORIENTATION_TAG, 1)
                upright = ImageOps.exif_transpose(image)  # a decoded copy: a truncated file fails here
                rgb = to_rgb(upright)
    except Image.UnidentifiedImageError:
        raise ImageProblem("unreadable", "not an image Pillow can read") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageProblem("unreadable", "too large: more pixels than Pillow decodes from untrusted files") from None
    except Exception as error:  # a damaged file can fail anywhere in Pillow (struct.error, IndexError, ...)
        raise ImageProblem("unreadable", f"damaged: {error or type(error).__name__}") from None
    box = center_square(*rgb.size)
    side = box[2] - box[0]
    if side < size and not allow_upscale:
        raise ImageProblem("small", f"{rgb.width}x{rgb.height}")
    facts["crop_box"] = " ".join(map(str, box))
    facts["filter"] = resample
    return rgb.crop(box).resize((size, size), RESAMPLING[resample]), facts


def list_sources(folder):
    """The files of one source folder in natural order of their names; hidden files and subfolders are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{relative(folder)} is not a folder; give a folder of face pictures.")
    names = visible_files(folder)
    if not names:
        raise InputError(
            f"{relative(folder)} holds no files (hidden files, subfolders and broken links are not read); "
            "give a folder of face pictures."
        )
    return [folder / name for name in names]


def _convert_one(job):
    """Worker: convert one file and save it as `target`; returns (facts, None) or (None, (kind, why))."""
    source, target, size, resample, allow_upscale = job
    try:
        square, facts = face_square(source, size, resample, allow_upscale)
    except ImageProblem as problem:
        return None, (problem.kind, str(problem))
    square.save(target, compress_level=6)
    return facts, None


def convert_folder(sources, folder, size, resample, allow_upscale, workers, progress):
    """Convert `sources` into `folder`/.0.png, .1.png, ..., `workers` processes at a time.

    Returns one (facts, None) or (None, (kind, why)) per source, in order (see `face_square`).
    """
    jobs = [(source, folder / f".{index}.png", size, resample, allow_upscale) for index, source in enumerate(sources)]
    chunksize = max(1, min(64, len(jobs) // (4 * workers)))
    done = []
    for result in parallel_map(_convert_one, jobs, workers, chunksize):
        done.append(result)
        progress.update(1)
    return done


def check_problems(folder, sources, results, size, skip_unreadable):
    """Raise InputError naming the unusable files of one folder; with `skip_unreadable`, warn about the unreadable ones."""
    for kind in ("unreadable", "small"):
        bad = [
            (path.name, problem[1]) for path, (_, problem) in zip(sources, results) if problem and problem[0] == kind
        ]
        if not bad:
            continue
        listing = name_listing(bad)
        where = f"{len(bad)} of {len(sources)} files in {relative(folder)}"
        if kind == "small":
            raise InputError(
                f"{where} are smaller than {size}x{size} after cropping to a square: {listing}; "
                "use larger pictures or a smaller size, or pass allow_upscale=True",
                hint="allow-upscale",
            )
        if not skip_unreadable:
            raise InputError(
                f"{where} are not readable images: {listing}; replace or delete them, or pass skip_unreadable=True",
                hint="skip-unreadable",
            )
        write_line(f"warning: skipped {where}, which are not readable images: {listing}.", sys.stderr)
    if all(problem for _, problem in results):
        raise InputError(f"{relative(folder)} holds no readable images; give a folder of face pictures.")


def import_class(source_dir, sources, target_dir, label, resample, settings, progress):
    """Convert one class's pictures `sources` (`list_sources(source_dir)`; `label` "real" or "fake")
    into `target_dir` under the exercise's names.

    settings: {"size", "allow_upscale", "skip_unreadable", "workers"}. Returns the manifest rows.
    """
    target_dir.mkdir()
    size, allow_upscale, workers = settings["size"], settings["allow_upscale"], settings["workers"]
    results = convert_folder(sources, target_dir, size, resample, allow_upscale, workers, progress)
    check_problems(source_dir, sources, results, size, settings["skip_unreadable"])
    name = real_name if label == "real" else fake_name
    kept = [(index, facts) for index, (facts, _) in enumerate(results) if facts is not None]
    rows = []
    for number, (index, facts) in enumerate(kept):
        (target_dir / f".{index}.png").rename(target_dir / name(number))
        source = os.path.abspath(sources[index])
        rows.append({"file": f"{target_dir.name}/{name(number)}", "class": label, "source": source, **facts})
    return rows


def check_request(real_dir, fake_dir, out_dir, filters, force):
    """Refuse an import before any work: unknown filters (ValueError), an `out_dir` that holds a
    source folder, is a file, or exists without `force` (InputError)."""
    for resample in filters:
        if resample not in RESAMPLING:
            raise ValueError(f"unknown resampling filter {resample!r}; choose one of {', '.join(RESAMPLING)}")
    if Path(real_dir).resolve() == Path(fake_dir).resolve():
        raise InputError(f"the real and the fake pictures are the same folder, {relative(real_dir)}; give two folders.")
    for source in (real_dir, fake_dir):
        if out_dir.resolve() in (Path(source).resolve(), *Path(source).resolve().parents):
            raise InputError(
                f"the output folder {relative(out_dir)} holds the pictures of {relative(source)}; "
                "choose another output folder."
            )
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"the output folder {relative(out_dir)} is a file; give the name of a folder to write.")
    if out_dir.exists() and not force:
        raise InputError(f"{relative(out_dir)} already exists", hint="force")


def import_faces(
    real_dir,
    fake_dir,
    out_dir,
    size=IMAGE_SIZE,
    real_resample="lanczos",
    fake_resample="lanczos",
    allow_upscale=False,
    skip_unreadable=False,
    force=False,
    workers=1,
):
    """Import the pictures of `real_dir` and `fake_dir` into `out_dir`; returns the manifest rows (dicts).

    out_dir/A_ffhq and out_dir/B_stylegan receive `size` x `size` 8-bit RGB PNGs made by
    `face_square`, numbered in natural order of the source names; out_dir/MANIFEST.csv gives each
    file's source, original format, size and mode, EXIF orientation, crop box and filter. Written
    into a hidden folder renamed into place when complete (common.folder_in_place), under a lock,
    so a failed, interrupted or concurrent import leaves `out_dir` as it was. Raises ValueError
    for an unknown filter, InputError as `check_request` and `check_problems` say and for a full disk.
    """
    out_dir = Path(out_dir)
    with write_lock(out_dir):  # a second import into the same folder stops at once
        check_request(real_dir, fake_dir, out_dir, (real_resample, fake_resample), force)
        classes = [
            (real_dir, list_sources(real_dir), REAL_FOLDER, "real", real_resample),
            (fake_dir, list_sources(fake_dir), FAKE_FOLDER, "fake", fake_resample),
        ]
        count = sum(len(sources) for _, sources, *_ in classes)
        require_free_space(out_dir.parent, count * size * size * 3, f"writing {count} images of {size}x{size} pixels")
        settings = dict(size=size, allow_upscale=allow_upscale, skip_unreadable=skip_unreadable, workers=workers)
        rows = []
        with (
            folder_in_place(out_dir) as tmp,
            progress(total=count, unit="images", desc="importing") as bar,
        ):
            for source_dir, sources, name, label, resample in classes:
                rows += import_class(source_dir, sources, tmp / name, label, resample, settings, bar)
            write_manifest(tmp / MANIFEST, rows)
    return rows


def write_manifest(path, rows):
    """Write the manifest rows (dicts with MANIFEST_COLUMNS) as CSV to `path`."""
    # a name that is not UTF-8 (bytes kept by Python as surrogates) is written as \udcXX, readably
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as file:
        writer = csv.DictWriter(file, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(data_dir):
    """The rows of data_dir/MANIFEST.csv as dicts, or [] when the folder was not made by `import_faces` or the file is unreadable.

    Raises InputError for a file larger than MAX_MANIFEST_BYTES, before reading it.
    """
    path = Path(data_dir) / MANIFEST
    if file_problem(path) is not None:  # missing, or a pipe that would block the reader
        return []
    if problem := size_problem(path, MAX_MANIFEST_BYTES, "that ffhq-import writes for up to 500,000 pictures"):
        raise InputError(
            f"{relative(path)} {problem}; it was not written by ffhq-import, delete it or import the pictures "
            f"again with `python -m iml ffhq-import --real DIR --fake DIR --out {relative(data_dir)} --force`."
        )
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
