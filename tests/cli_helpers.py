"""Helpers for the tests of what a user reads: the one line `cli.explain` makes of a library error,
and generated argument lists for a script's command line (hypothesis).

Shared by test_util.py, test_download.py, test_standin.py, test_input_opt.py and
test_deepfake_interpretation.py; kept out of conftest.py, which another set of tests shares.
"""

import contextlib
import re
import sys

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import cli
from common import InputError
from models import CheckpointError

VALUES = ["-1", "0", "1", "2", "3", "1e-3", "1e38", "nan", "inf", "x", "", "all", "10", "cpu", "cuda", "tpu", "auto"]
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextlib.contextmanager
def raises_explained(pattern, error_type=InputError):
    """Like pytest.raises(error_type, match=pattern), but matched against the line the user reads,
    `cli.explain(error)`: the error's facts plus the flag or command its hint chooses."""
    with pytest.raises(error_type) as info:
        yield info
    line = cli.explain(info.value)
    assert re.search(pattern, line), line


def options(parser, excluded):
    """(flag, takes_value, choices) for every option of `parser` except `excluded` and --help."""
    found = []
    for action in parser._actions:
        flags = [f for f in action.option_strings if f.startswith("--")]
        if not flags or flags[0] in excluded or flags[0] == "--help":
            continue
        found.append((flags[0], action.nargs != 0, action.choices))
    return found


def argument_lists(parser, excluded, max_size=4):
    """Lists of up to `max_size` options of `parser` (not `excluded`), each with a value from VALUES."""

    def render(option, value):
        flag, takes_value, choices = option
        if not takes_value:
            return [flag]
        if choices and value == "x":
            value = list(choices)[0]  # reach the code behind a valid choice, too
        return [flag, value]

    pairs = st.tuples(st.sampled_from(options(parser, excluded)), st.sampled_from(VALUES))
    return st.lists(pairs, max_size=max_size).map(lambda items: [a for o, v in items for a in render(o, v)])


def run_cli(module, argv, monkeypatch, script=None):
    """Call `module.main()` as `python src/<script> argv` would; return the outcome.

    "user error": a cli.UserError, common.InputError or models.CheckpointError, which `cli.run_main`
    prints as one line: that line must be one sentence. "argparse": argparse refused the arguments
    (exit 2) or printed help (exit 0). "ran": main returned.
    """
    monkeypatch.setattr(sys, "argv", [script or f"{module.__name__}.py", *argv])
    try:
        module.main()
    except (cli.UserError, InputError, CheckpointError) as error:
        message = cli.explain(error)
        assert "\n" not in message and message.endswith((".", ")")), message
        return "user error"
    except SystemExit as exit_:
        assert exit_.code in (0, 2), exit_.code
        return "argparse"
    return "ran"
