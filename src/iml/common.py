"""Helpers every script shares, with no command line in them: repository paths, seeding, devices,
waiting for the GPU, writing files and folders atomically (with a lock against a second writer),
and the project's error type. Worker processes are in processes.py.

Paths are built from the repository root, so a script works from any folder, a SLURM job included.
"""

import contextlib
import errno
import glob
import os
import random
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "data"
FIGURES_DIR = ROOT / "figures"
LOGS_DIR = ROOT / "logs"
WEIGHTS_PATH = DATA_DIR / "weights.pth"
MNIST_RAW_DIR = DATA_DIR / "MNIST" / "raw"
# Temporary files and folders carry "<pid>@<host>" of the process writing them, so that a later
# run removes only those whose process is gone; a name without it is left over from an old version.
HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:32]
_held_locks = set()
_written = []  # what this run has written so far, for the message when it is stopped
LOCK_WAIT_S = 0.5  # how long a second writer waits for the first one to finish before it gives up
MAX_LOCK_BYTES = 256  # a lock file holds "<pid>@<host>": whatever is larger is not read


class InputError(ValueError):
    """An input the user supplied (a file, a folder, a setting) is missing, damaged or unusable.

    The message states the facts. `hint` names the situation (e.g. "ffhq-missing") for which the
    command-line layer (src/iml/cli.py) adds the flag or command that helps; library code knows none.
    """

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


def relative(path):
    """`path` relative to the repository root where possible, for short messages.

    Only the folders are resolved, so a symbolic link is named as the link the user gave; the
    name is `printable`.
    """
    path = Path(os.path.abspath(path))
    with contextlib.suppress(RuntimeError, OSError):  # only the folders: a link is named as the link
        path = path.parent.resolve() / path.name  # (a link loop raises RuntimeError before Python 3.13)
    return printable(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def printable(name):
    """`name` as text, quoted (Python's repr) when it holds a newline or another unprintable
    character, so that it cannot forge a second line of a one-line message."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def file_problem(path):
    """Why `path` cannot be read as a regular file, or None when it can; checked before opening it.

    Follows symbolic links. A folder, a pipe (which would block a reader forever), a socket or
    device, a missing target, a link loop and a file without read permission each get their reason.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        return "does not exist" if not path.is_symlink() else "is a link to nothing (its target does not exist)"
    except OSError as error:  # ELOOP: a symbolic link loop, ENAMETOOLONG, EACCES on a parent folder, ...
        return f"cannot be reached ({error.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


def set_seed(seed):
    """Seed Python, numpy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds code that uses the global numpy generator
    torch.manual_seed(seed)


def parse_device(name):
    """The torch.device that the name `name` (not "auto") stands for, whether or not this machine has it;
    InputError for a name that is none of cpu, cuda, cuda:N and mps."""
    unknown = InputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise unknown from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise unknown
    return device


def get_device(name="auto"):
    """The torch.device for `name`: "auto" picks cuda, then mps, then cpu. InputError for an unknown name
    (parse_device), and with the hints "device" and "device-count" for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{name} was asked for but this machine has no CUDA GPU", hint="device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(
            f"{name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).", hint="device-count"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{name} was asked for but MPS is not available", hint="device")
    return device


def synchronize(device):
    """Wait until the GPU has finished its queued work, so that a timer measures it (no-op elsewhere)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def default_workers():
    """CPU cores this process may use (SLURM's --cpus-per-task restricts the affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def usual_permissions(path, mode):
    """Give `path` the permissions `mode` less the umask (mkstemp and mkdtemp make private ones)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def owner_tag():
    """This process as "<pid>@<host>", written into the names of its temporary files and folders."""
    return f"{os.getpid()}@{HOST}"


def process_alive(pid, host=HOST):
    """False when process `pid` on this machine is gone (or a zombie); True when it runs, and for
    this process and any process of another machine (which cannot be asked)."""
    if host != HOST or pid == os.getpid() or os.name == "nt":  # on Windows os.kill(pid, 0) would end it
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    try:  # a killed child that nobody has waited for yet is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_leftovers(path):
    """Delete what killed runs left beside `path`: temporary files `.name.<pid>@<host>-*.tmp`
    (atomic_path) and folders `.name.partial-<pid>@<host>-*` (make_partial_folder, replace_folder)
    whose process is gone, and those of either naming without an owner (from older versions).
    Those of a live process, or of another machine, are kept. Returns the paths removed."""
    path = Path(path)
    name, owner = re.escape(path.name), r"(?:(\d+)@([A-Za-z0-9-]*)-)?"
    pattern = re.compile(rf"\.{name}\.(?:{owner}[a-z0-9_]{{8}}\.tmp|partial-{owner}[^/]+)")
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*"):
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        pid, host = match.group(1) or match.group(3), match.group(2) or match.group(4)
        if pid is None or not process_alive(int(pid), host):
            remove_path(candidate)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash, Ctrl-C or any other exception inside the block leaves any existing `path` untouched
    and no stray file; a temporary file left by a killed run is removed by the next one.
    """
    path = Path(path)
    tmp = None
    try:
        tmp = temporary_beside(path)
        yield tmp
        usual_permissions(tmp, 0o666)
        os.replace(tmp, path)
        record_written(path)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def temporary_beside(path):
    """A new empty file `.name.<pid>@<host>-*.tmp` beside `path` (its folder made, leftovers of dead runs
    removed first), to be renamed onto `path` when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner_tag()}-", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def record_written(path):
    """Note that this run has put the file or folder `path` into place (`written_files` lists them)."""
    _written.append(Path(path))


def forget_written():
    """Start a new record of what this run writes (a process that runs several commands, like the tests)."""
    _written.clear()


def written_files():
    """The files and folders this run has put into place so far, in that order."""
    return list(_written)


def free_disk_bytes(path):
    """Free bytes on the filesystem that holds `path` (or its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def require_free_space(path, needed, what):
    """Raise InputError unless `needed` bytes are free where `path` lies; `what` names the work."""
    free = free_disk_bytes(path)
    if free < needed:
        raise InputError(
            f"{what} needs {needed / 1e9:.2f} GB free in {relative(path)} but only {free / 1e9:.2f} GB is free; "
            "free some space and run again."
        )


def make_partial_folder(target_dir):
    """A fresh hidden folder `.name.partial-<pid>@<host>-*` beside `target_dir`, to be renamed onto it when complete.

    Such folders, and temporary files, that an earlier run left behind are deleted first if their
    process is gone (`remove_leftovers`); those of a live run are kept.
    """
    target_dir = Path(target_dir)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target_dir)
    tmp = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}.partial-{owner_tag()}-"))
    usual_permissions(tmp, 0o777)
    return tmp


@contextlib.contextmanager
def folder_in_place(target_dir):
    """Yield a fresh partial folder beside `target_dir` (`make_partial_folder`) to fill; when the
    block succeeds it replaces `target_dir` (`replace_folder`), and whatever is left is removed."""
    tmp = make_partial_folder(target_dir)
    try:
        yield tmp
        replace_folder(tmp, target_dir)
    finally:
        remove_path(tmp)


@contextlib.contextmanager
def scratch_folder(name):
    """Yield a fresh private folder in the system's temporary folder (TMPDIR) for work that is
    thrown away, removed when the block ends however it ends. It is a partial folder of
    `TMPDIR/name` (`make_partial_folder`), so one that a killed run left is removed by the next run."""
    tmp = make_partial_folder(Path(tempfile.gettempdir()) / name)
    os.chmod(tmp, 0o700)
    try:
        yield tmp
    finally:
        remove_path(tmp)


def replace_folder(complete, target_dir):
    """Rename the folder `complete` onto `target_dir`, replacing an existing one only at the last moment.

    The old folder is set aside under a hidden name and deleted afterwards; if the second rename
    fails or is interrupted, it is put back.
    """
    target_dir = Path(target_dir)
    if not target_dir.exists():
        os.rename(complete, target_dir)
        record_written(target_dir)
        return
    remove_leftovers(target_dir)
    old = target_dir.with_name(f".{target_dir.name}.partial-{owner_tag()}-old")
    remove_path(old)
    os.rename(target_dir, old)
    try:
        os.rename(complete, target_dir)
    except BaseException:
        os.rename(old, target_dir)
        raise
    record_written(target_dir)
    remove_path(old)


def remove_path(path):
    """Delete a folder tree, a file or a link at `path`, if anything is there; errors are ignored."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def write_lock(target):
    """Hold, for the block, the lock on writing `target` (a file or folder): a second run that
    wants to write it fails at once instead of deleting the first one's work.

    The lock is filelock's FileLock (flock on Unix) on a hidden file `.name.lock` beside `target`,
    into which the holder writes its "<pid>@<host>"; the system releases it when the process ends
    however it ends, and a lock file left by a killed run is simply taken over. The file is removed
    while the lock is still held. Re-entrant within one process. Raises InputError naming the
    process that holds the lock.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    key = os.path.realpath(path)
    if key in _held_locks:
        yield
        return
    lock = _take_lock(path, target)
    if lock is None:  # a filesystem without locks: the owner check of remove_leftovers still protects
        yield
        return
    _held_locks.add(key)
    try:
        path.write_text(f"{owner_tag()}\n")
        yield
    finally:
        _held_locks.discard(key)
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it, so that no one waits on a file that is gone
        lock.release()


def _take_lock(path, target):
    """filelock's FileLock on `path`, acquired (None where the filesystem has no locks), or InputError
    naming the process that holds it."""
    import filelock

    for _ in range(3):
        holder = lock_holder(path)  # read first: filelock 3's failed attempt empties the file
        lock = filelock.FileLock(path, timeout=LOCK_WAIT_S)
        try:
            lock.acquire()
        except filelock.Timeout:
            pid, _, host = (lock_holder(path) or holder).partition("@")
            who = f" (process {pid}{f' on {host}' if host and host != HOST else ''})" if pid.isdigit() else ""
            raise InputError(f"another run is writing {relative(target)}{who}; wait for it or stop it.") from None
        except (NotImplementedError, OSError) as error:
            if isinstance(error, OSError) and error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            return None
        if path.exists():
            return lock
        lock.release()  # the holder removed the file between our open and our lock: take the new one
    raise InputError(f"another run is writing {relative(target)}; wait for it or stop it.")


def lock_holder(path):
    """The "<pid>@<host>" written into the lock file `path`, or "" when there is none.

    Only its first MAX_LOCK_BYTES are read, and only from a regular file (a pipe would block)."""
    if file_problem(path) is not None:
        return ""
    try:
        with open(path, "rb") as file:
            return file.read(MAX_LOCK_BYTES).decode(errors="replace").strip()[:200]
    except OSError:
        return ""
