"""Size bounds for the files the project reads, checked with os.stat before a byte is read.

Each reader keeps its bound beside it (models.MAX_CHECKPOINT_BYTES, ffhq_import.MAX_MANIFEST_BYTES,
image_files.MAX_PNG_BYTES, ...), chosen from what the file holds when it is right, with room to
spare. A larger file is refused with its name, its size and the bound, before it can fill the
memory or keep a run busy for minutes: a sparse file of 1 GiB costs no disk space, but reading it
costs 1 GiB of memory and more once it is parsed.
"""

import os
import zipfile

from iml.common import file_problem


def format_size(count):
    """A byte count for messages: "1,060 bytes", "64 KiB", "1.6 MiB", "1,024 MiB"."""
    if count < 2**16:
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


def zip_directory_problem(path, limit, holds):
    """Why zipfile should not open the archive `path`: its table of contents (central directory),
    which zipfile reads whole and turns into one Python object of about 1 KB per member, is larger
    than `limit` bytes. A file that is there but cannot be read (a pipe would block zipfile) gets
    common.file_problem's reason; None for a missing file and one that is no zip archive at all
    (zipfile then says so itself)."""
    problem = file_problem(path)
    if problem is not None:
        return None if problem == "does not exist" else problem
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
