"""The command-line layer the scripts share: argparse types, the common options, and the one place
that turns an error into the single line a user reads, with the flag or command that helps.

Library code raises ordinary exceptions that state the facts (common.InputError carries a `hint`
naming the situation; models.CheckpointError names the weights file); only this module and the
scripts' `main` functions know flags and commands.
"""

import argparse
import contextlib
import difflib
import errno
import importlib
import math
import os
import signal
import sys
import tempfile
import traceback
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from iml.common import (
    ROOT,
    WEIGHTS_PATH,
    InputError,
    forget_written,
    get_device,
    parse_device,
    printable,
    relative,
    written_files,
)
from iml.outputs import default_out
from iml.progress import bars_cleared_on_error
from models import CheckpointError

DOWNLOAD_COMMAND = "python -m iml ffhq-download"
STANDIN_COMMAND = "python -m iml ffhq-standin"
IMPORT_COMMAND = "python -m iml ffhq-import"
RETRAIN_COMMAND = "python src/mnist_integrated.py --retrain"
FFHQ_HOW = (
    f"run `{DOWNLOAD_COMMAND}` to fetch the FFHQ/StyleGAN images, or "
    f"`{STANDIN_COMMAND}` to make a synthetic stand-in and pass --data data/ffhq_standin"
)

# What the user reads for an InputError with this hint; {message} is the error's own text.
ADVICE = {
    "device": "--device {message}; use --device cpu or auto.",
    "device-count": "--device {message}",
    "trapezoid-steps": "{message}; use --steps 2 or more.",
    "index": "--{message}",
    "ffhq-missing": f"{{message}}; run `{DOWNLOAD_COMMAND}` to fetch FFHQ/StyleGAN "
    f"(or `{STANDIN_COMMAND}` for synthetic stand-in data).",
    "ffhq-none": f"{{message}}; run `{DOWNLOAD_COMMAND}` for the real data or `{STANDIN_COMMAND}` for a synthetic stand-in.",
    "ffhq-download": f"{{message}} and run `{DOWNLOAD_COMMAND}` again.",
    "ffhq-rerun": f"{{message}}; run `{DOWNLOAD_COMMAND}` again.",
    "ffhq-resume": f"{{message}}, run `{DOWNLOAD_COMMAND}` again to resume{{offline}}.",
    "ffhq-unreachable": f"{{message}} and run `{DOWNLOAD_COMMAND}` again{{offline}}.",
    "ffhq-data-folder": f"{{message}}; {FFHQ_HOW}.",
    "ffhq-data-layout": f"{{message}}; --data must hold A_ffhq/ and B_stylegan/ ({FFHQ_HOW}).",
    "skip-unreadable": "{message} (--skip-unreadable on the command line) to leave them out.",
    "force": "{message}; delete it or pass --force to replace it.",
    "ffhq-empty": f"{{message}}; put 128x128 RGB PNG images into it, pass another --data, or make a folder from any "
    f"face pictures with `{IMPORT_COMMAND}`.",
    "ffhq-empty-standin": f"{{message}}; write it again with `{STANDIN_COMMAND} --out <that folder> --force`.",
    "ffhq-empty-import": f"{{message}}; import it again with `{IMPORT_COMMAND} --real DIR --fake DIR --out <that folder> --force`.",
    "split-sizes": "{message}; ask for fewer with --train-size, --val-size and --test-size, or use a folder with more images.",
    "allow-upscale": "{message} (--allow-upscale on the command line).",
}


class UserError(Exception):
    """A problem the user can fix, already worded for the command line: printed as one line, exit 1."""


def similar_file(path):
    """A file beside `path` whose name is one or two typos away from it (data/weight.pth -> data/weights.pth), or None."""
    path = Path(path)
    try:
        names = [entry.name for entry in os.scandir(path.parent) if entry.is_file()]
    except OSError:
        return None
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.8)
    return path.parent / close[0] if close and close[0] != path.name else None


def user_message(error):
    """The one line a user reads for a library exception: its facts plus the flag or command that helps."""
    if isinstance(error, CheckpointError):
        path = Path(error.path)
        if error.reason == "does not exist" and (near := similar_file(path)) is not None:
            return f"weights file {relative(path)} does not exist, but {relative(near)} does; pass --weights {relative(near)}."
        default = os.path.realpath(path) == str(WEIGHTS_PATH)  # realpath: no error on a link loop
        restore = f"restore the shipped file with `git checkout {relative(WEIGHTS_PATH)}` or " if default else ""
        return (
            f"weights file {relative(path)} {error.reason}; {restore}recreate it with "
            f"`{RETRAIN_COMMAND} --weights {relative(path)}`."
        )
    message = str(error)
    template = ADVICE.get(getattr(error, "hint", None))
    return template.format(message=message, offline=offline_alternatives()) if template else message


def offline_alternatives():
    """The ways to Task 3's data without the download: the stand-in, or faces already on disk (named
    when the course's folder of real and fake faces lies beside the repository)."""
    shared = ROOT.parent / "shared" / "data" / "faces"
    faces = (
        f"--real {shared / 'real'} --fake {shared / 'fake'}" if (shared / "real").is_dir() else "--real DIR --fake DIR"
    )
    return (
        f"; or go on without it: `{STANDIN_COMMAND}` makes a synthetic stand-in (then --data data/ffhq_standin), "
        f"and `{IMPORT_COMMAND} {faces} --out data/faces` imports faces you have (then --data data/faces)"
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (SLURM's scancel or time limit): unwound like Ctrl-C, so every cleanup runs."""


def _terminate(signum, frame):
    raise Terminated


def one_line(text):
    """`text` with line breaks shown as \\n, so that no name inside it can start a second line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def todo_message(error):
    """The line for a part of the student handout still to write: the function and file that raised `error`.

    `iml handout` replaces each solution region by `raise NotImplementedError("TODO: ...")`; the
    innermost frame of the traceback is the function the student completes.
    """
    frame = traceback.extract_tb(error.__traceback__)[-1]
    what = str(error).removeprefix("TODO:").strip()
    return f"{frame.name} in {relative(frame.filename)} is still to write ({what}); complete it there and run again."


def run_main(main):
    """Call `main()` and turn what a user can cause into one line on stderr and an exit status.

    A UserError, InputError or CheckpointError exits 1 with its message, as does a part of the student
    handout still to write (`todo_message`); an OSError while reading
    or writing (a full disk, a read-only folder) exits 1 naming the path and the reason; Ctrl-C
    exits 130 and SIGTERM 143, after the same cleanup (temporary files are removed on the way out).
    """
    prepare_process()
    try:
        with bars_cleared_on_error():
            main()
    except (UserError, InputError, CheckpointError) as error:
        print(f"error: {one_line(user_message(error))}", file=sys.stderr)
        sys.exit(1)
    except NotImplementedError as error:
        if not str(error).startswith("TODO"):
            raise
        print(f"error: {one_line(todo_message(error))}", file=sys.stderr)
        sys.exit(1)
    except BrokenProcessPool:
        print(
            "error: a worker process stopped unexpectedly (killed, or out of memory); run again, with --workers 1 "
            "if it happens again.",
            file=sys.stderr,
        )
        sys.exit(1)
    except OSError as error:
        where = f" {relative(error.filename)}" if error.filename else ""
        print(
            f"error: could not read or write{where}: {error.strerror or error}; nothing was left half-written.",
            file=sys.stderr,
        )
        sys.exit(1)
    except Terminated:
        print(one_line(stop_message("stopped by SIGTERM")), file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt:
        print(one_line(stop_message("interrupted")), file=sys.stderr)
        sys.exit(130)


def prepare_process():
    """What every run sets up first: SIGTERM unwinds like Ctrl-C (which works even where a parent ignored
    it), stdout and stderr escape what their
    encoding lacks (so any path can be shown), a usable plotting backend, and an empty record of writes."""
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # ignored by a parent: Ctrl-C must still stop the run
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    check_plotting_backend()
    forget_written()


def check_plotting_backend():
    """Before any work: a plotting backend that matplotlib refuses (MPLBACKEND) is replaced by Agg, which
    writes files and needs no screen, with a note; the figures are saved to files either way."""
    name = os.environ.get("MPLBACKEND")
    if not name or "matplotlib" in sys.modules:  # already imported: it accepted the name
        return
    try:
        import matplotlib  # it checks MPLBACKEND as it loads
    except (ValueError, ImportError) as error:
        for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
            del sys.modules[module]  # half-loaded: the next import starts afresh
        reason = str(error).split(";")[0]
    else:
        if (reason := backend_module_problem(name)) is None:
            return
        matplotlib.rcParams["backend"] = "agg"
    os.environ["MPLBACKEND"] = "agg"
    print(f"note: MPLBACKEND='{printable(name)}' cannot be used ({reason}); drawing with Agg.", file=sys.stderr)


def backend_module_problem(name):
    """Why the backend of MPLBACKEND=module://NAME cannot draw, or None; matplotlib takes any such name as it
    loads and fails only at the first figure, after the work."""
    if not name.startswith("module://"):
        return None
    try:
        module = importlib.import_module(name.removeprefix("module://"))
    except Exception as error:  # importing runs the module's code: whatever it raises, it cannot draw
        return f"its module cannot be imported: {type(error).__name__}"
    return None if hasattr(module, "FigureCanvas") else "its module is not a matplotlib backend: it has no FigureCanvas"


def stop_message(what):
    """What a stopped run tells: which files it had put into place, and that nothing else was written."""
    written = written_files()
    if not written:
        return f"{what}; nothing was written, and the files of earlier runs are as they were."
    names = ", ".join(relative(path) for path in dict.fromkeys(written))
    return f"{what}; written before the stop: {names}; nothing else was written."


def device_from_argument(name):
    """get_device for a `--device` value; errors are worded for the command line (UserError)."""
    try:
        return get_device(name)
    except InputError as error:
        raise UserError(user_message(error)) from None


def _argument_type(convert, what, accept, requirement, name):
    """An argparse type: `convert` the text, then demand `accept(value)`; errors say `requirement`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = name
    return parse


positive_int = _argument_type(int, "an integer", lambda v: v > 0, "a positive integer", "positive_int")
non_negative_int = _argument_type(int, "an integer", lambda v: v >= 0, "zero or a positive integer", "non_negative_int")
positive_float = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and v > 0, "a positive number", "positive_float"
)
non_negative_float = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and v >= 0, "zero or a positive number", "non_negative_float"
)
# Adam learning rates above 1 only diverge, or overflow float32 inside the optimiser.
learning_rate = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and 0 < v <= 1, "a positive number no larger than 1", "learning_rate"
)
digit = _argument_type(int, "a digit 0-9", lambda v: 0 <= v <= 9, "a digit 0-9", "digit")
# numpy's global generator (common.set_seed) takes seeds 0 to 2**32 - 1 only; others were a traceback
random_seed = _argument_type(
    int, "an integer", lambda v: 0 <= v < 2**32, f"an integer from 0 to {2**32 - 1}", "random_seed"
)


def int_range(low, high):
    """An argparse type for integers from `low` to `high`; its error states the range."""
    return _argument_type(
        int, "an integer", lambda v: low <= v <= high, f"an integer from {low} to {high}", "int_range"
    )


def float_range(low, high, low_open=False):
    """An argparse type for finite numbers from `low` (excluded when `low_open`) to `high`."""
    above = (lambda v: v > low) if low_open else (lambda v: v >= low)
    word = "above" if low_open else "from"
    return _argument_type(
        float,
        "a number",
        lambda v: math.isfinite(v) and above(v) and v <= high,
        f"a number {word} {low:g} to {high:g}",
        "float_range",
    )


# beyond about 1000 Adam's coupled penalty only shrinks every weight to nothing, or overflows
weight_decay = float_range(0, 1000)


def path_argument(text):
    """An argparse type for a file or folder name: a Path, refusing the empty string (which means '.'), a
    NUL character and a symbolic link loop anywhere on the path, before any work is done."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a file or folder, got an empty string")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{printable(text)} holds a NUL character; give a path without it")
    if in_link_loop(text):
        raise argparse.ArgumentTypeError(f"{printable(text)} {LOOP}")
    return Path(text)


LOOP = "goes through a symbolic link loop (a link that leads back to itself); remove the link or give another path"


def in_link_loop(path):
    """Whether `path`, or a folder on the way to it, is a symbolic link loop (the system says ELOOP)."""
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    return False


def device_name(text):
    """The argparse type of --device: a name that common.parse_device takes, or auto (whether this machine has
    it is checked when the run starts, by get_device)."""
    if text != "auto":
        try:
            parse_device(text)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_common_arguments(parser, command):
    """The options every script shares: --seed, --device and the output folder --out, whose default
    is `command`'s own git-ignored folder outputs/<command>/ (--out figures refreshes the README's)."""
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda, then mps, then cpu)",
    )
    add_out_argument(parser, command)


def add_out_argument(parser, command):
    """--out, by default outputs/<command>/; the README's figures change only with --out figures."""
    parser.add_argument(
        "--out",
        type=path_argument,
        default=default_out(command),
        help=f"folder for the figures (default: {relative(default_out(command))}/; "
        "--out figures refreshes the README's figures)",
    )


def check_output_folder(path, flag="--out"):
    """Refuse, before any work is done, an output folder that could not be written; else UserError.

    The folder itself need not exist yet: its nearest existing ancestor must be a folder in which
    a file can be created (probed with an unnamed temporary file, which leaves no trace), so a
    file in the way, a read-only disk or a missing permission is found now, not after the work.
    """
    path = Path(path)
    if in_link_loop(path):
        raise UserError(f"{flag} {relative(path)} {LOOP}.")
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {relative(path)} is a file, not a folder; give the name of a folder.")
    existing = next(folder for folder in (path, *path.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise UserError(
            f"{flag} {relative(path)} lies below {relative(existing)}, which is a file; give another folder."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(
            f"{flag} {relative(path)} cannot be written ({relative(existing)}: {error.strerror}); "
            "give a folder you can write to."
        ) from None


def check_output_outside(out, inputs):
    """Refuse an output folder inside one of the input folders `inputs` ({flag: folder or None}): figures
    written into a dataset would be read as data by the next run."""
    for flag, folder in inputs.items():
        if folder is not None and Path(out).resolve().is_relative_to(Path(folder).resolve()):
            raise UserError(
                f"--out {relative(out)} lies inside {flag} {relative(folder)}, where its files would be read as "
                "data next time; give a folder outside it."
            )
