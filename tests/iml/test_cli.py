"""src/iml/cli.py: the one line a user reads for an error, the --device option, the argparse types, and
the same as a user meets them on the command line of a script."""

import argparse

import pytest
import torch
from conftest import argparse_error, assert_clear_error, run_script

from iml import cli
from iml.common import DATA_DIR, WEIGHTS_PATH, InputError
from models import CheckpointError


def test_explain_names_the_retrain_command_for_the_default_weights():
    error = CheckpointError(WEIGHTS_PATH, "does not exist")
    assert cli.user_message(error) == (
        "weights file data/weights.pth does not exist; restore the shipped file with `git checkout data/weights.pth` "
        "or recreate it with `python src/mnist_integrated.py --retrain --weights data/weights.pth`."
    )


def test_explain_adds_the_weights_flag_for_another_weights_file(tmp_path):
    outside = tmp_path / "w.pth"
    assert cli.user_message(CheckpointError(outside, "is truncated or not a PyTorch checkpoint")) == (
        f"weights file {outside.resolve()} is truncated or not a PyTorch checkpoint; recreate it with "
        f"`python src/mnist_integrated.py --retrain --weights {outside.resolve()}`."
    )
    inside = DATA_DIR / "other.pth"
    assert cli.user_message(CheckpointError(inside, "does not exist")).endswith(
        "recreate it with `python src/mnist_integrated.py --retrain --weights data/other.pth`."
    )


def test_explain_adds_the_advice_for_the_hint_and_leaves_other_errors_alone():
    assert cli.user_message(InputError("the trapezoid rule needs at least 2 steps, got 1", hint="trapezoid-steps")) == (
        "the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more."
    )
    assert cli.user_message(InputError("cuda was asked for but this machine has no CUDA GPU", hint="device")) == (
        "--device cuda was asked for but this machine has no CUDA GPU; use --device cpu or auto."
    )
    assert cli.user_message(InputError("plain facts.")) == "plain facts."
    assert cli.user_message(cli.UserError("--out x is a file.")) == "--out x is a file."


def test_device_from_argument_words_errors_for_the_command_line():
    assert cli.device_from_argument("cpu") == torch.device("cpu")
    with pytest.raises(cli.UserError, match=r"^unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps\.$"):
        cli.device_from_argument("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_from_argument_for_cuda_where_there_is_none():
    with pytest.raises(cli.UserError) as info:
        cli.device_from_argument("cuda")
    assert str(info.value) == "--device cuda was asked for but this machine has no CUDA GPU; use --device cpu or auto."


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_from_argument_for_a_gpu_index_that_does_not_exist():
    count = torch.cuda.device_count()
    with pytest.raises(cli.UserError) as info:
        cli.device_from_argument(f"cuda:{count}")
    assert str(info.value) == f"--device cuda:{count} does not exist: this machine has {count} CUDA device(s)."


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (cli.positive_int, "0", "must be a positive integer, got 0"),
        (cli.positive_int, "-2", "must be a positive integer, got -2"),
        (cli.positive_int, "x", "'x' is not an integer"),
        (cli.positive_int, "1.5", "'1.5' is not an integer"),
        (cli.non_negative_int, "-1", "must be zero or a positive integer, got -1"),
        (cli.positive_float, "0", "must be a positive number, got 0"),
        (cli.positive_float, "inf", "must be a positive number, got inf"),
        (cli.positive_float, "nan", "must be a positive number, got nan"),
        (cli.non_negative_float, "-0.5", "must be zero or a positive number, got -0.5"),
        (cli.learning_rate, "0", "must be a positive number no larger than 1, got 0"),
        (cli.learning_rate, "1e38", "must be a positive number no larger than 1, got 1e38"),
        (cli.learning_rate, "nan", "must be a positive number no larger than 1, got nan"),
        (cli.learning_rate, "fast", "'fast' is not a number"),
        (cli.digit, "10", "must be a digit 0-9, got 10"),
        (cli.digit, "-1", "must be a digit 0-9, got -1"),
        (cli.random_seed, "-1", "must be an integer from 0 to 4294967295, got -1"),
        (cli.random_seed, "4294967296", "must be an integer from 0 to 4294967295, got 4294967296"),
        (cli.random_seed, "1e3", "'1e3' is not an integer"),
    ],
)
def test_argument_types_reject_bad_values(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == message


def test_argument_types_accept_good_values():
    assert cli.positive_int("3") == 3
    assert cli.non_negative_int("0") == 0
    assert cli.positive_float("0.15") == 0.15
    assert cli.non_negative_float("0") == 0.0
    assert cli.learning_rate("1") == 1.0 and cli.learning_rate("1e-3") == 1e-3
    assert [cli.digit(str(d)) for d in range(10)] == list(range(10))
    assert cli.random_seed("0") == 0 and cli.random_seed("4294967295") == 2**32 - 1


def test_argparse_reports_the_type_error_with_the_flag(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=cli.positive_int)
    assert "argument --epochs: must be a positive integer, got 0" in argparse_error(parser, ["--epochs", "0"], capsys)


def test_run_main_prints_one_line_and_exits_1(capsys):
    def fails(error):
        def main():
            raise error

        return main

    for error, line in (
        (cli.UserError("--val-size 60000 leaves no training digits."), "--val-size 60000 leaves no training digits."),
        (InputError("cuda was asked for but this machine has no CUDA GPU", hint="device"), "--device cuda was asked"),
        (
            CheckpointError(WEIGHTS_PATH, "does not exist"),
            "weights file data/weights.pth does not exist; restore the shipped file",
        ),
    ):
        with pytest.raises(SystemExit) as info:
            cli.run_main(fails(error))
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {line}") and err.count("\n") == 1, err


def test_run_main_lets_other_errors_through_and_exits_130_on_ctrl_c(capsys):
    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        cli.run_main(bug)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as info:
        cli.run_main(interrupted)
    assert info.value.code == 130
    assert (
        capsys.readouterr().err == "interrupted; nothing was written, and the files of earlier runs are as they were.\n"
    )


def test_check_output_folder_refuses_a_file(tmp_path):
    cli.check_output_folder(tmp_path)
    cli.check_output_folder(tmp_path / "new")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(cli.UserError, match=r"is a file, not a folder; give the name of a folder\.$"):
        cli.check_output_folder(tmp_path / "file.png")


# ------------------------------------------------------------------ on the command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be an integer from 1 to 1000, got 0"),
        (["--epochs", "-2"], "argument --epochs: must be an integer from 1 to 1000, got -2"),
        (["--batch-size", "0"], "argument --batch-size: must be an integer from 1 to 60000, got 0"),
        (["--val-size", "-1"], "argument --val-size: must be an integer from 0 to 59999, got -1"),
        (["--lr", "0"], "argument --lr: must be a positive number no larger than 1, got 0"),
        (["--lr", "1e38"], "argument --lr: must be a positive number no larger than 1, got 1e38"),
    ],
)
def test_training_arguments(args, message):
    result = run_script("mnist_integrated.py", "--train-only", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_device_is_a_bad_argument():
    result = run_script("mnist_integrated.py", "--train-only", "--device", "tpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "mnist_integrated.py: error: argument --device: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps."
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_where_there_is_none():
    result = run_script("mnist_integrated.py", "--train-only", "--device", "cuda")
    assert_clear_error(
        result, "--device cuda was asked for but this machine has no CUDA GPU; use --device cpu or auto."
    )
