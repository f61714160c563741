"""Fetching FFHQ/StyleGAN from Google Drive (resumable), with safe zip extraction, and the check
that a folder holds the complete dataset. MNIST is fetched by mnist_data.py.

Nothing half-written ever looks complete: downloads resume from gdown's partial file, and archives
are extracted into a hidden folder that is renamed into place only after every member and the
dataset check passed.
"""

import functools
import glob
import importlib.util
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from iml.common import InputError, make_partial_folder, relative, require_free_space, write_lock
from iml.file_limits import zip_directory_problem
from iml.progress import progress
from util import FAKE_FOLDER, FFHQ_IMAGES_PER_FOLDER, REAL_FOLDER, list_images

FFHQ_NAME = "ffhq_style_gan"  # the archive's name and the folder it becomes under data/ (util.FFHQ_DIR)
FFHQ_DRIVE_ID = "1MOHKuEVqURfCKAN9dwp1o2tuR19OTQCF"
FFHQ_ZIP_BYTES = 4_200_000_000  # approximate, for the disk-space check before the download starts
FFHQ_LAYOUT = ("source_data/A_ffhq", "source_data/B_stylegan")  # the folders the archive must hold
# The table of contents, which zipfile reads whole (about 1 KB of memory per member), lists 140,000
# images in about 18 MB; a larger one is no FFHQ/StyleGAN archive.
MAX_TABLE_OF_CONTENTS = 32 * 2**20
# zipfile reads stored and Deflate members, bzip2 and LZMA where Python was built with them
READABLE_METHODS = {0, 8} | {method for method, lib in ((12, "bz2"), (14, "lzma")) if importlib.util.find_spec(lib)}
METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 12: "bzip2", 14: "LZMA", 93: "Zstandard", 95: "XZ"}
LZMAError = importlib.import_module("lzma").LZMAError if importlib.util.find_spec("lzma") else zlib.error


def verify_ffhq(source_dir, per_folder=FFHQ_IMAGES_PER_FOLDER):
    """Check that `source_dir` holds A_ffhq and B_stylegan with `per_folder` images each (InputError if not)."""
    for name in (REAL_FOLDER, FAKE_FOLDER):
        count = len(list_images(Path(source_dir) / name))
        if count != per_folder:
            raise InputError(f"{relative(Path(source_dir) / name)} holds {count} images, not {per_folder}.")


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


def zip_member_unreadable(info):
    """Why Python's zipfile cannot read a member (encrypted, or compressed with a method it lacks), or None."""
    if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
        return "is encrypted"
    if info.compress_type not in READABLE_METHODS:
        name = METHOD_NAMES.get(info.compress_type, "an unknown method")
        return f"is compressed with {name} (method {info.compress_type}), which Python's zipfile cannot read"
    return None


def member_parts(name):
    """The path parts of a member's name: '/' and '\\' both separate them (some Windows tools write '\\')."""
    return [part for part in re.split(r"[/\\]", name) if part not in ("", ".")]


def open_zip(zip_path):
    """The zip archive at `zip_path`, opened; InputError if it is missing, not a complete archive, or
    lists far more members than the dataset holds (MAX_TABLE_OF_CONTENTS)."""
    if problem := zip_directory_problem(zip_path, MAX_TABLE_OF_CONTENTS, "of the FFHQ/StyleGAN archive"):
        raise InputError(f"{relative(zip_path)} {problem}; delete it", hint="ffhq-download")
    try:
        return zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise InputError(f"{relative(zip_path)} does not exist.") from None
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(
            f"{relative(zip_path)} is not a complete zip archive ({error}); it is probably truncated, delete it and download it again."
        ) from None


def safe_members(archive, zip_path, target_dir, layout=()):
    """[(member, its path parts inside `target_dir`)], refusing the archive, before anything is
    written, if any member is unsafe (`zip_member_problem`) or unreadable (`zip_member_unreadable`).

    macOS metadata (`__MACOSX/`) is skipped; see `member_paths` for where the members go.
    """
    members = [info for info in archive.infolist() if member_parts(info.filename)[:1] != ["__MACOSX"]]
    refused = [(info.filename, why) for info in members if (why := zip_member_problem(info))]
    if refused:
        more = f" (and {len(refused) - 1} more unsafe members)" if len(refused) > 1 else ""
        raise InputError(
            f"{relative(zip_path)} was refused and nothing was extracted: member {refused[0][0]!r} has {refused[0][1]}{more}."
        )
    unreadable = [(info.filename, why) for info in members if (why := zip_member_unreadable(info))]
    if unreadable:
        (name, why), more = unreadable[0], f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        tool = "with its password" if why == "is encrypted" else "with 7-Zip or another tool that reads it"
        raise InputError(
            f"{relative(zip_path)} was not extracted: member {name!r}{more} {why}; "
            f"unpack it yourself {tool} {destination(target_dir, layout)}, or delete {relative(zip_path)}",
            hint="ffhq-download",
        )
    return list(zip(members, member_paths(members, zip_path, target_dir, layout)))


def destination(target_dir, layout):
    """Where a user should unpack an archive by hand: "so that data/x holds a/ and b/", or "into data/x"."""
    folders = " and ".join(f"{folder}/" for folder in layout)
    return f"so that {relative(target_dir)} holds {folders}" if layout else f"into {relative(target_dir)}"


def member_paths(members, zip_path, target_dir, layout=()):
    """Each member's path parts inside `target_dir`, as `unzip` in its parent would lay them out.

    If every member lies under one top-level folder named like `target_dir`, that folder becomes
    `target_dir`. `layout` names folders ("source_data/A_ffhq") that must hold members; the one
    top-level folder is dropped, whatever its name, when that makes them appear. If they do not,
    InputError (hint "ffhq-download") says what the archive holds, before anything is written.
    """
    parts = [member_parts(info.filename) for info in members]
    tops = {p[0] for p in parts if p}
    if len(tops) == 1 and any(len(p) > 1 for p in parts):
        inner = [p[1:] for p in parts]
        if tops == {target_dir.name} or (layout and not holds(parts, layout) and holds(inner, layout)):
            parts = inner
    if layout and not holds(parts, layout):
        raise InputError(
            f"{relative(zip_path)} does not hold {' and '.join(layout)} ({describe_top(parts)}), so nothing was extracted; "
            f"unpack it yourself {destination(target_dir, layout)}, or delete {relative(zip_path)}",
            hint="ffhq-download",
        )
    return parts


def holds(parts, layout):
    """True if, for each folder "a/b" of `layout`, some member path lies inside it."""
    folders = [folder.split("/") for folder in layout]
    return all(any(len(p) > len(f) and p[: len(f)] == f for p in parts) for f in folders)


def describe_top(parts):
    """What the member paths `parts` hold at their top: "it holds 'a/', 'b.txt'", for messages."""

    def entries(paths):
        names = sorted({p[0] + ("/" if len(p) > 1 else "") for p in paths if p})
        shown = ", ".join(repr(name) for name in names[:5])
        return (shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")) or "nothing", names

    shown, names = entries(parts)
    if not names:
        return "it is empty"
    if len(names) == 1 and names[0].endswith("/"):
        return f"it holds only {shown}, which holds {entries([p[1:] for p in parts])[0]}"
    return f"it holds {shown}"


def extract_zip(zip_path, target_dir, check=None, layout=()):
    """Extract `zip_path` so that `target_dir` appears complete, or not at all; returns `target_dir`.

    Refuses, before writing anything, unsafe or unreadable members (`safe_members`), archives
    without the folders of `layout` and archives too large for the disk. Holding the lock on
    `target_dir` (`write_lock`), it extracts into a hidden `.name.partial-*` folder, checks every
    CRC, calls `check(folder)` (which may raise InputError) and only then renames the folder into
    place; a failed run removes it, a killed run's is removed by the next. Raises InputError
    naming the archive, and the member where it failed.
    """
    zip_path, target_dir = Path(zip_path), Path(target_dir)
    with open_zip(zip_path) as archive:
        members = safe_members(archive, zip_path, target_dir, layout)
        with write_lock(target_dir):
            if target_dir.exists():
                raise InputError(f"{relative(target_dir)} already exists; delete it to extract {zip_path.name} again.")
            needed = sum(info.file_size for info, _ in members) + 16 * 2**20
            require_free_space(target_dir.parent, needed, f"extracting {zip_path.name}")
            extract_members(archive, members, zip_path, target_dir, check)
    return target_dir


def extract_members(archive, members, zip_path, target_dir, check):
    """Write `members` into a hidden partial folder, check it and rename it to `target_dir`; see `extract_zip`."""
    tmp = make_partial_folder(target_dir)
    info = None
    try:
        for info, part in progress(members, unit="files", desc=f"extracting {zip_path.name}"):
            write_member(archive, info, tmp.joinpath(*part) if part else None)
        if check is not None:
            check(tmp)
        tmp.rename(target_dir)
    except (zipfile.BadZipFile, EOFError, zlib.error, LZMAError, OSError) as error:
        at = f" at member {info.filename!r}" if info is not None else ""
        if isinstance(error, OSError) and error.errno is not None:  # the disk, not the data (bz2 raises OSError too)
            raise InputError(
                f"extracting {relative(zip_path)} failed{at} ({error.strerror}); nothing was kept."
            ) from None
        raise InputError(f"{relative(zip_path)} is corrupt{at} ({error}); delete it and download it again.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_member(archive, info, dest):
    """Write one zip member to `dest` (None: the top folder itself, nothing to write)."""
    if dest is None:
        return
    if info.filename.endswith(("/", "\\")):
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(dest, "wb") as sink:
        shutil.copyfileobj(source, sink, 2**20)


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


def download_ffhq(data_dir, verify, downloader=gdown_download):
    """Download ffhq_style_gan.zip into `data_dir` (resuming), extract and verify it; returns its source_data.

    verify(source_folder) raises InputError unless the folder holds the complete dataset; an
    existing, complete data_dir/ffhq_style_gan is returned as it is. A second run at the same time
    fails at once (`write_lock`). Raises InputError (hints "ffhq-download", "ffhq-resume",
    "ffhq-rerun") when the transfer, the archive or the check fails.
    """
    data_dir = Path(data_dir)
    target, zip_path = data_dir / FFHQ_NAME, data_dir / f"{FFHQ_NAME}.zip"
    with write_lock(target):
        if target.exists():
            try:
                verify(target / "source_data")
            except InputError as error:
                raise InputError(
                    f"{relative(target)} exists but is not the complete dataset ({str(error).rstrip('.')}); delete it",
                    hint="ffhq-download",
                ) from None
            return target / "source_data"
        if not zip_path.exists():
            fetch_archive(zip_path, downloader)
        extract_zip(zip_path, target, check=functools.partial(check_dataset, verify, zip_path), layout=FFHQ_LAYOUT)
    return target / "source_data"


def check_dataset(verify, zip_path, folder):
    """verify(folder/source_data) for `extract_zip`; a failure is told in terms of the archive, as
    its hidden folder is deleted before the user reads the message."""
    try:
        verify(folder / "source_data")
    except InputError as error:
        facts = str(error).split("; ")[0].rstrip(".").replace(f"{relative(folder)}/", "")
        if folder.name in facts:
            facts = "its images did not pass the check"
        raise InputError(
            f"{zip_path.name} does not hold the expected dataset ({facts}); nothing was kept, delete {relative(zip_path)}",
            hint="ffhq-download",
        ) from None


def fetch_archive(zip_path, downloader):
    """Run `downloader(zip_path)` after checking the disk space; a failed transfer keeps what arrived."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    received = partial_download_bytes(zip_path)
    needed = max(FFHQ_ZIP_BYTES - received, 0) + FFHQ_ZIP_BYTES
    require_free_space(zip_path.parent, needed, f"downloading and extracting {zip_path.name}")
    try:
        downloader(zip_path)
    except (Exception, KeyboardInterrupt) as error:  # any failure of the transfer leaves a resumable partial file
        received = partial_download_bytes(zip_path)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "interrupted"
        stopped = f"downloading {zip_path.name} stopped ({type(error).__name__}: {reason})"
        if received:
            raise InputError(f"{stopped}; {received / 1e6:.1f} MB were received and kept", hint="ffhq-resume") from None
        raise InputError(
            f"{stopped}; nothing was received, check that drive.google.com can be reached", hint="ffhq-unreachable"
        ) from None
    if not zip_path.is_file():
        raise InputError(f"the download finished but {relative(zip_path)} was not written", hint="ffhq-rerun")
