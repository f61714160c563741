"""Helpers every script shares, with no command line in them: repository paths, seeding, devices,
waiting for the GPU, writing files and folders atomically, and the project's error type.

Paths are built from the repository root, so a script works from any folder, a SLURM job included.
"""

import contextlib
import glob
import os
import random
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
FIGURES_DIR = ROOT / "figures"
LOGS_DIR = ROOT / "logs"
WEIGHTS_PATH = DATA_DIR / "weights.pth"
MNIST_RAW_DIR = DATA_DIR / "MNIST" / "raw"


class InputError(ValueError):
    """An input the user supplied (a file, a folder, a setting) is missing, damaged or unusable.

    The message states the facts. `hint` names the situation (e.g. "ffhq-missing") for which the
    command-line layer (src/cli.py) adds the flag or command that helps; library code knows none.
    """

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


def relative(path):
    """`path` relative to the repository root where possible, for short messages.

    A name with a newline or another unprintable character is quoted (Python's repr), so that it
    cannot forge a second line of a one-line message.
    """
    path = Path(path).resolve()
    try:
        text = str(path.relative_to(ROOT))
    except ValueError:
        text = str(path)
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


def get_device(name="auto"):
    """The torch.device for `name`: "auto" picks cuda, then mps, then cpu.

    Raises InputError for an unknown name, and (hints "device", "device-count") for a device this
    machine lacks.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    unknown = InputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise unknown from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise unknown
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{name} was asked for but this machine has no CUDA GPU", hint="device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(
            f"{name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).", hint="device-count"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{name} was asked for but MPS is not available", hint="device")
    return device


def synchronise(device):
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


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or Ctrl-C inside the block leaves any existing `path` untouched and no stray file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        usual_permissions(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(fig, path):
    """Save a matplotlib figure atomically (PNG at 120 dpi unless the suffix says otherwise) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


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
    """A fresh hidden folder `.name.partial-*` beside `target_dir`, to be renamed onto it when complete.

    Such folders that an earlier, killed run left behind are deleted first.
    """
    target_dir = Path(target_dir)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in target_dir.parent.glob(f".{glob.escape(target_dir.name)}.partial-*"):
        remove_path(stale)
    tmp = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}.partial-"))
    usual_permissions(tmp, 0o777)
    return tmp


def replace_folder(complete, target_dir):
    """Rename the folder `complete` onto `target_dir`, replacing an existing one only at the last moment."""
    target_dir = Path(target_dir)
    if not target_dir.exists():
        os.rename(complete, target_dir)
        return
    old = target_dir.with_name(f".{target_dir.name}.partial-old")
    remove_path(old)
    os.rename(target_dir, old)
    os.rename(complete, target_dir)
    remove_path(old)


def remove_path(path):
    """Delete a folder tree, a file or a link at `path`, if anything is there; errors are ignored."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
