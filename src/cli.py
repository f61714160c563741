"""The command-line layer the scripts share: argparse types, the common options, and the one place
that turns an error into the single line a user reads, with the flag or command that helps.

Library code raises ordinary exceptions that state the facts (common.InputError carries a `hint`
naming the situation; models.CheckpointError names the weights file); only this module and the
scripts' `main` functions know flags and commands.
"""

import argparse
import math
import sys
from pathlib import Path

from common import FIGURES_DIR, WEIGHTS_PATH, InputError, get_device, relative
from models import CheckpointError

DOWNLOAD_COMMAND = "python src/util.py ffhq-download"
STANDIN_COMMAND = "python src/util.py ffhq-standin"
IMPORT_COMMAND = "python src/util.py ffhq-import"
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
    "ffhq-resume": f"{{message}}, run `{DOWNLOAD_COMMAND}` again to resume.",
    "ffhq-data-folder": f"{{message}}; {FFHQ_HOW}.",
    "ffhq-data-layout": f"{{message}}; --data must hold A_ffhq/ and B_stylegan/ ({FFHQ_HOW}).",
    "skip-unreadable": "{message} (--skip-unreadable on the command line) to leave them out.",
    "force": "{message}; delete it or pass --force to replace it.",
    "allow-upscale": "{message} (--allow-upscale on the command line).",
}


class UserError(Exception):
    """A problem the user can fix, already worded for the command line: printed as one line, exit 1."""


def user_message(error):
    """The one line a user reads for a library exception: its facts plus the flag or command that helps."""
    if isinstance(error, CheckpointError):
        path = Path(error.path)
        command = RETRAIN_COMMAND if path.resolve() == WEIGHTS_PATH else f"{RETRAIN_COMMAND} --weights {relative(path)}"
        return f"weights file {relative(path)} {error.reason}; recreate it with `{command}`."
    message = str(error)
    template = ADVICE.get(getattr(error, "hint", None))
    return template.format(message=message) if template else message


def run_main(main):
    """Call `main()`; a UserError, InputError or CheckpointError becomes one line on stderr and exit 1."""
    try:
        main()
    except (UserError, InputError, CheckpointError) as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; no partial output was written.", file=sys.stderr)
        sys.exit(130)


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
# beyond about 1000 Adam's coupled penalty only shrinks every weight to nothing, or overflows
weight_decay = _argument_type(
    float, "a number", lambda v: math.isfinite(v) and 0 <= v <= 1000, "a number from 0 to 1000", "weight_decay"
)
digit = _argument_type(int, "a digit 0-9", lambda v: 0 <= v <= 9, "a digit 0-9", "digit")
# numpy's global generator (common.set_seed) takes seeds 0 to 2**32 - 1 only; others were a traceback
random_seed = _argument_type(
    int, "an integer", lambda v: 0 <= v < 2**32, f"an integer from 0 to {2**32 - 1}", "random_seed"
)


def add_common_arguments(parser, out_default=FIGURES_DIR):
    """The options every script shares: --seed, --device and the output folder --out."""
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda, then mps, then cpu)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=out_default,
        help=f"folder for the figures (default: {relative(out_default)}/)",
    )


def check_output_folder(path):
    """Refuse an `--out` that names an existing file, before any work is done."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"--out {relative(path)} is a file, not a folder; give a folder for the figures.")
