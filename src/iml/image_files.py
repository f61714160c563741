"""The files of an FFHQ/StyleGAN folder: their names, their order, and the check that each is a
128x128 8-bit RGB PNG, made by Pillow without decoding the pixels.

util.list_images and util.load_folder use these checks; the data commands (standin.py,
ffhq_import.py) write files under the same names.
"""

import os
import re
import stat
from pathlib import Path

from iml.common import InputError, relative
from iml.file_limits import format_size, size_problem

IMPORT_MANIFEST = "MANIFEST.csv"  # written by ffhq_import into every folder it makes
# A 128x128 RGB PNG holds 49 KB of pixels before compression; the rest allows for metadata (an ICC
# profile, EXIF). Pillow's verify() reads each chunk whole, so a larger file could fill the memory.
MAX_PNG_BYTES = 4 * 2**20
# Pillow's modes of a PNG that is not RGB, named as the PNG colour types
PNG_MODES = {"1": "grayscale", "L": "grayscale", "I": "grayscale", "I;16": "grayscale", "I;16B": "grayscale"}
PNG_MODES.update({"P": "palette", "LA": "grayscale+alpha", "RGBA": "RGBA"})


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


def visible_files(folder):
    """The names of the files in `folder` (not hidden ones, not subfolders, not broken links), in natural order."""
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries if entry.is_file() and not entry.name.startswith(".")]
    return sorted(names, key=natural_key)


def name_listing(problems, shown=5):
    """ "a.png (why), b.png (why) and 3 more" for a list of (name, why) pairs, for one-line messages."""
    listing = ", ".join(f"{name} ({why})" for name, why in problems[:shown])
    return listing + (f" and {len(problems) - shown} more" if len(problems) > shown else "")


def png_problem(path, size=128):
    """Why `path` is not a `size` x `size` 8-bit RGB PNG, or None when it is; the pixels are not decoded.

    Pillow's PNG reader (the one Image.open picks for a PNG) reads the header lazily: the
    signature and the IHDR chunk, whose checksum it checks, give the mode, bit depth and size.
    `verify()` then reads the chunks up to the end marker and checks each one's checksum, which
    finds a truncated or damaged file without decompressing it.
    """
    from PIL import PngImagePlugin

    try:
        with open(path, "rb") as file:
            if (length := os.fstat(file.fileno()).st_size) == 0:
                return "empty file"
            if length > MAX_PNG_BYTES:
                return f"{format_size(length)}, more than the {format_size(MAX_PNG_BYTES)} a {size}x{size} PNG takes"
            try:
                image = PngImagePlugin.PngImageFile(file)
            except Exception as error:  # Pillow's SyntaxError, or a struct or EOF error of a short header
                return "not a PNG file" if str(error) == "not a PNG file" else "corrupt PNG header"
            return header_problem(image, size) or verify_problem(image)
    except OSError as error:
        return f"unreadable: {error.strerror}"


def header_problem(image, size):
    """Why the lazily opened PNG `image` is not `size` x `size` 8-bit RGB, or None."""
    if image.mode != "RGB":
        return f"{PNG_MODES.get(image.mode, f'mode {image.mode}')} instead of RGB"
    if image.tile and "16" in str(image.tile[0][3]):  # the raw mode of 16-bit RGB is "RGB;16B"
        return "16-bit instead of 8-bit"
    if image.size != (size, size):
        return f"{image.width}x{image.height} instead of {size}x{size}"
    return None


def verify_problem(image):
    """Why the chunks of the PNG `image` are damaged (`Image.verify`), or None."""
    try:
        image.verify()
    except (OSError, EOFError) as error:  # Pillow's "Truncated File Read" and the like
        return "truncated PNG" if isinstance(error, EOFError) or "runcated" in str(error) else f"damaged PNG ({error})"
    except Exception as error:  # a chunk's checksum (SyntaxError) or another damage Pillow finds
        return f"corrupt PNG ({error})"
    return None


def folder_problem(path):
    """Why `path` cannot be listed as a folder, or None when it can: "does not exist", "is a file,
    not a folder", "is a link to nothing (...)", "cannot be reached (Too many levels of symbolic
    links)", "is not readable (permission denied)", ..."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        return "does not exist" if not path.is_symlink() else "is a link to nothing (its target does not exist)"
    except OSError as error:  # ELOOP: a symbolic link loop, ENOTDIR: a file above it, EACCES on a parent, ...
        return f"cannot be reached ({error.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is a file, not a folder" if stat.S_ISREG(info.st_mode) else "is not a folder (a pipe, socket or device)"
    if not os.access(path, os.R_OK | os.X_OK):
        return "is not readable (permission denied)"
    return None


def check_image_folder(folder):
    """Raise InputError unless the image folder `folder` (A_ffhq, B_stylegan) can be listed.

    A missing folder gets the hint "ffhq-missing" (how to fetch the data); anything else that is
    there says what it is and what to do.
    """
    problem = folder_problem(folder)
    if problem == "does not exist":
        raise InputError(f"{relative(folder)} does not exist", hint="ffhq-missing")
    if problem is not None:
        fix = "make it readable (chmod u+rx)" if "permission" in problem else "remove it"
        raise InputError(
            f"{relative(folder)} {problem}; an image folder must be a readable folder of PNG files: {fix}, "
            "or use another data folder."
        )


def check_image_size(path):
    """Raise InputError if the image file `path` is larger than MAX_PNG_BYTES, before it is read."""
    if problem := size_problem(path, MAX_PNG_BYTES, "that an exercise image takes"):
        raise InputError(f"{relative(path)} {problem}; delete or replace it and run again.")


def empty_folder_facts(folder, download_dir, standin):
    """(message, hint) of the InputError for an image folder without files, naming only `folder` and its dataset.

    download_dir: where ffhq-download extracts (data/ffhq_style_gan); standin: whether the folder
    is stand-in data. Hints: "ffhq-download" for download_dir/source_data (the download folder
    must go before ffhq-download extracts again), "ffhq-empty-standin", "ffhq-empty-import"
    (MANIFEST.csv), else "ffhq-empty".
    """
    folder = Path(folder)
    source = folder.parent
    empty = f"{relative(folder)} holds no image files"
    if source.resolve() == (Path(download_dir) / "source_data").resolve():
        return f"{empty}, so the download in {relative(download_dir)} is incomplete; delete {relative(download_dir)}", (
            "ffhq-download"
        )
    if standin:
        return f"{empty} ({relative(source)} is a synthetic stand-in)", "ffhq-empty-standin"
    if (source / IMPORT_MANIFEST).is_file():
        facts = f"{relative(source)} was imported from other pictures: it holds {IMPORT_MANIFEST}"
        return f"{empty} ({facts})", "ffhq-empty-import"
    return empty, "ffhq-empty"
