"""Size bounds for the files the project reads, checked with os.stat before a byte is read.

Each reader keeps its bound beside it (models.MAX_CHECKPOINT_BYTES, ffhq_import.MAX_MANIFEST_BYTES,
image_files.MAX_PNG_BYTES, ...), chosen from what the file holds when it is right, with room to
spare. A larger file is refused with its name, its size and the bound, before it can fill the
memory or keep a run busy for minutes: a sparse file of 1 GiB costs no disk space, but reading it
costs 1 GiB of memory and more once it is parsed.
"""

import os
import zipfile
from pathlib import Path

from iml.common import InputError, file_problem, relative


def format_size(count):
    """A byte count for messages: "200 bytes", "12 KiB", "1.6 MiB", "1,024 MiB"."""
    if count < 2**10:
        return f"{count:,} bytes"
    if count < 2**20:
        return f"{count / 2**10:,.0f} KiB"
    return f"{count / 2**20:,.1f} MiB" if count < 10 * 2**20 else f"{count / 2**20:,.0f} MiB"


def size_problem(path, limit, holds):
    """Why `path` cannot be read, or None: common.file_problem's reason (missing, a folder, a pipe,
    ...), or for a file of more than `limit` bytes "is 1,024 MiB, more than the 64 MiB <holds>",
    e.g. holds="that a manifest of ffhq-import takes"."""
    problem = file_problem(path)
    if problem is not None:
        return problem
    size = os.stat(path).st_size
    if size > limit:
        return f"is {format_size(size)}, more than the {format_size(limit)} {holds}"
    return None


def read_bounded(path, limit, holds, fix):
    """The bytes of `path`, read only when `size_problem` finds none, and never more than `limit`
    of them (a file that grows after the check is refused as well).

    Raises InputError "<path> <problem>; <fix>", e.g. fix "delete it and run again."
    """
    path = Path(path)
    problem = size_problem(path, limit, holds)
    if problem is None:
        try:
            with open(path, "rb") as file:
                data = file.read(limit + 1)
        except OSError as error:
            problem = f"could not be read ({error.strerror or error})"
        else:
            if len(data) <= limit:
                return data
            problem = f"grew beyond the {format_size(limit)} {holds} while it was read"
    raise InputError(f"{relative(path)} {problem}; {fix}")


def zip_directory_problem(path, limit, holds):
    """Why zipfile should not open the archive `path`: its table of contents (central directory),
    which zipfile reads whole and turns into one Python object of about 1 KB per member, is larger
    than `limit` bytes; None when it is not, or when `path` is no zip archive at all (zipfile then
    says so itself)."""
    try:
        with open(path, "rb") as file:
            end = zipfile._EndRecData(file)  # the end record, Zip64 included, as ZipFile itself reads it
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if not end:
        return None
    size = end[zipfile._ECD_SIZE]
    if size > limit:
        return f"has a table of contents of {format_size(size)}, more than the {format_size(limit)} {holds}"
    return None
