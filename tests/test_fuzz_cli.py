"""Generated argument lists for the three command lines: every run ends in a result, an argparse
error (exit 2) or one UserError sentence, never in an unhandled exception."""

import shutil
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import deepfake_interpretation
import input_opt
import mnist_integrated
import util

VALUES = ["-1", "0", "1", "2", "3", "1e-3", "1e38", "nan", "inf", "x", "", "all", "10", "cpu", "cuda", "tpu", "auto"]
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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
    def render(option, value):
        flag, takes_value, choices = option
        if not takes_value:
            return [flag]
        if choices and value == "x":
            value = list(choices)[0]  # reach the code behind a valid choice, too
        return [flag, value]

    pairs = st.tuples(st.sampled_from(options(parser, excluded)), st.sampled_from(VALUES))
    return st.lists(pairs, max_size=max_size).map(lambda items: [a for o, v in items for a in render(o, v)])


def run_cli(module, argv, monkeypatch):
    """Call `module.main()` as `python src/<module>.py argv` would; return the outcome."""
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *argv])
    try:
        module.main()
    except util.UserError as error:
        message = str(error)
        assert "\n" not in message and message.endswith((".", ")")), message
        return "user error"
    except SystemExit as exit_:
        assert exit_.code in (0, 2), exit_.code
        return "argparse"
    return "ran"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "weights.pth"
    shutil.copyfile(util.WEIGHTS_PATH, path)
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    out = tmp_path_factory.mktemp("standin") / "data"
    util.make_standin(out, per_class=12, seed=0)
    return out


@FUZZ
@example(argv=[])
@given(argv=argument_lists(input_opt.build_parser(), {"--weights", "--out", "--threads"}))
def test_fuzz_input_opt(argv, weights, tmp_path_factory, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    prefix = ["--weights", str(weights), "--out", str(out), "--steps", "2"]
    outcome = run_cli(input_opt, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and len(list(out.glob("*.png"))) == 3


@FUZZ
@example(argv=[])
@given(
    argv=argument_lists(
        mnist_integrated.build_parser(),
        {"--weights", "--out", "--retrain", "--num-images", "--skip-checks", "--noise-draws", "--smoothgrad"},
    )
)
def test_fuzz_mnist_integrated(argv, weights, tmp_path_factory, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    prefix = ["--weights", str(weights), "--out", str(out), "--num-images", "2", "--skip-checks", "--steps", "2"]
    before = weights.read_bytes()
    outcome = run_cli(mnist_integrated, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and list(out.glob("*.png"))
    assert weights.read_bytes() == before  # never replaced without --retrain


@FUZZ
@example(argv=[])
@given(argv=argument_lists(deepfake_interpretation.build_parser(), {"--data", "--out", "--workers"}))
def test_fuzz_deepfake(argv, standin, tmp_path_factory, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    prefix = ["--data", str(standin), "--out", str(out), "--workers", "1"]
    prefix += ["--train-size", "8", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    outcome = run_cli(deepfake_interpretation, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and list(out.glob("*.png"))
