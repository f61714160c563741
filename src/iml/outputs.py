"""Where a run writes its figures, and how: one git-ignored folder per script or command, and every
figure of one run written together or not at all.

- `default_out("input_opt")` is `outputs/input_opt/`; only `--out figures` refreshes the README's
  figures, which are tracked, so that an ordinary run never changes a tracked file.
- Inside `figure_set(out, command)`, `save_figure` renders each figure into a hidden temporary file
  beside its target. When the block ends without an error, the files are renamed into place one
  after the other with Ctrl-C and SIGTERM held back for those few renames (they take effect right after);
  a run stopped or failed earlier leaves the previous figures as they were, and no temporary file.
- Runs with different options never leave a mix: the names a command wrote into a folder are kept
  in the hidden file `.<command>.figures` there, and a figure of the previous set that this run
  did not draw is removed when the new set goes in. Figures of other commands are not touched.
"""

import contextlib
import os
import signal
import threading
from pathlib import Path

from iml.common import (
    ROOT,
    record_written,
    remove_path,
    temporary_beside,
    usual_permissions,
    write_lock,
)

OUTPUTS_DIR = ROOT / "outputs"
MANIFEST_BYTES = 64 * 1024  # a list of figure names; anything larger was not written by this module

_staged = None  # while a figure_set is open: [(temporary file, target)], in the order saved


def default_out(command):
    """The git-ignored folder `outputs/<command>/` where `command` (a script's stem or an iml
    command's name) writes by default."""
    return OUTPUTS_DIR / command


def save_figure(fig, path):
    """Save a matplotlib figure (PNG at 120 dpi unless the suffix says otherwise) to `path` and close it.

    Inside `figure_set` the file is only staged, and goes into place with the rest of the set;
    outside one it is written at once, atomically (common.atomic_path). Returns `path`.
    """
    import matplotlib.pyplot as plt

    from iml.common import atomic_path

    path = Path(path)
    try:
        if _staged is None:
            with atomic_path(path) as tmp:
                _render(fig, tmp, path)
            return path
        tmp = temporary_beside(path)
        _staged.append((tmp, path))
        _render(fig, tmp, path)
    finally:
        plt.close(fig)
    return path


def _render(fig, tmp, path):
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")


@contextlib.contextmanager
def figure_set(out, command):
    """Collect the figures saved inside the block and write them into place together when it succeeds.

    `command` names the set's owner (e.g. "input_opt"): a figure that it wrote into `out` last time
    and did not draw now is removed at the same moment. Nested sets join the outermost one. Yields
    the list of paths written, filled in when the block has succeeded.
    """
    global _staged
    written = []
    if _staged is not None:
        yield written
        return
    _staged = []
    try:
        yield written
        written.extend(_commit(Path(out), command, _staged))
    finally:
        for tmp, _ in _staged:
            tmp.unlink(missing_ok=True)
        _staged = None


def write_figures(figures, out, command):
    """Write `figures` ({file name: matplotlib figure}) into the folder `out` as one set (`figure_set`);
    returns their paths."""
    with figure_set(out, command) as written:
        for name, fig in figures.items():
            save_figure(fig, Path(out) / name)
    return written


def _commit(out, command, staged):
    """Rename the staged files onto their targets and remove the stale ones of `command`'s last set."""
    manifest = out / f".{command}.figures"
    targets = {target: tmp for tmp, target in staged}  # a name saved twice: the last one wins
    names = sorted(target.name for target in targets if target.parent == out)
    if not targets and not manifest.exists():  # nothing drawn now, nothing of an earlier set to remove
        return []
    with write_lock(manifest):
        stale = [out / name for name in previous_names(manifest) if name not in names]
        with signals_held():
            for target, tmp in targets.items():
                usual_permissions(tmp, 0o666)
                os.replace(tmp, target)
                record_written(target)
            for path in stale:
                remove_path(path)
            if names:
                manifest.write_text("".join(f"{name}\n" for name in names))
            else:
                remove_path(manifest)
    return list(targets)


def previous_names(manifest):
    """The figure names listed in `manifest` (plain file names only), or [] when it is missing or odd."""
    try:
        if manifest.is_symlink() or manifest.stat().st_size > MANIFEST_BYTES:
            return []
        lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line and line == Path(line).name and not line.startswith(".")]


@contextlib.contextmanager
def signals_held():
    """Hold back SIGINT and SIGTERM during the block: one that arrives meanwhile is noted, and handled by
    the usual handler right after it.

    Python-level handlers, not a signal mask: a mask holds only the calling thread, and the system
    may hand a signal for the process to any other (PyTorch's worker threads). Only the main
    thread can set handlers; elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda number, frame: arrived.append(number)) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        for number in dict.fromkeys(arrived):
            signal.raise_signal(number)
