"""What a weights file must be before torch reads a byte of it: a regular file (a pipe would block
the reader forever) and a zip archive, as torch.save writes, whose members unpack to no more than
models.py allows, so that a tiny file cannot make torch.load allocate gigabytes.

models.load_checkpoint asks `checkpoint_problem` with its limits, then loads with weights_only=True.
"""

import zipfile

from iml.file_limits import size_problem, zip_directory_problem

NOT_A_CHECKPOINT = "is truncated or not a PyTorch checkpoint"
# torch.save stores its members uncompressed, so the file is its members plus about 100 bytes of
# headers each; the CNN's checkpoint has 16 members and a table of contents of 1.2 KB.
MAX_TABLE_OF_CONTENTS = 64 * 2**10


def checkpoint_problem(path, max_unpacked, max_pickled):
    """Why `path` cannot be a checkpoint of the exercise's CNN, judged without unpacking it, or None.

    Looks only at the file's type and size and the zip archive's table of contents: a folder,
    pipe, link loop or unreadable file, a file of more than `max_unpacked` bytes, a table of
    contents of more than MAX_TABLE_OF_CONTENTS, a file that is not a zip archive and an archive
    whose members unpack to more than `max_unpacked` bytes (or whose pickle exceeds `max_pickled`)
    each get their reason.
    """
    problem = size_problem(path, max_unpacked, "accepted for this CNN's weights, whose file takes 1.6 MB")
    problem = problem or zip_directory_problem(path, MAX_TABLE_OF_CONTENTS, "of a checkpoint of this CNN")
    if problem is not None:
        return problem
    if not zipfile.is_zipfile(path):
        return NOT_A_CHECKPOINT
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return f"{NOT_A_CHECKPOINT} ({type(error).__name__})"
    unpacked = sum(info.file_size for info in members)
    pickled = sum(info.file_size for info in members if info.filename.endswith(".pkl"))
    if unpacked > max_unpacked:
        return (
            f"unpacks to {unpacked / 2**20:,.0f} MiB, far more than the 1.6 MB of this CNN's weights "
            f"(at most {max_unpacked // 2**20} MiB is accepted)"
        )
    if pickled > max_pickled:
        return (
            f"holds {pickled / 2**20:,.1f} MiB of pickle, far more than the 1 KB this CNN's checkpoint needs "
            f"(at most {max_pickled // 2**20} MiB is accepted)"
        )
    return None
