"""src/iml/cli.py, second round: numeric options with ranges that --help states, outputs checked before
any work, the empty path, names that cannot forge a second line, SIGTERM, OSError while writing, and
a mistyped --weights. Each case is also run as a user meets it, in a subprocess, where the message matters."""

import argparse
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_clear_error, run_iml, run_script, wait_for_handler

import deepfake_interpretation
import input_opt
import mnist_integrated
from iml import cli, data_cli, mnist_cnn
from iml.common import ROOT, WEIGHTS_PATH, relative
from models import CNN, CheckpointError

PARSERS = {
    "input_opt.py": input_opt.build_parser(),
    "mnist_integrated.py": mnist_integrated.build_parser(),
    "deepfake_interpretation.py": deepfake_interpretation.build_parser(),
}


def numeric_actions(parser):
    """(flag, action) for every option whose value is a number."""
    found = []
    for action in parser._actions:
        name = getattr(action.type, "__name__", "")
        if action.option_strings and name in (
            "int_range",
            "float_range",
            "learning_rate",
            "weight_decay",
            "random_seed",
        ):
            found.append((action.option_strings[0], action))
    return found


def subparsers():
    (commands,) = [a for a in data_cli.build_parser()._actions if a.dest == "command"]
    return commands.choices


@pytest.mark.parametrize("script", sorted(PARSERS))
def test_every_numeric_option_has_a_range_that_help_states(script):
    parser = PARSERS[script]
    plain = [a.option_strings[0] for a in parser._actions if a.type in (int, float)]
    assert not plain, f"options without a range: {plain}"
    for flag, action in numeric_actions(parser):
        if flag == "--seed":
            continue
        assert any(ch.isdigit() for ch in action.help.split("(default")[0]), (flag, action.help)
        for huge in ("1e30", "10000000000000", "-1"):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(huge)


def test_the_data_commands_bound_their_numbers_too():
    for parser in subparsers().values():
        for flag, action in numeric_actions(parser):
            if flag != "--seed":
                with pytest.raises(
                    argparse.ArgumentTypeError, match=r"must be an integer from \d+ to \d+, got 10000000000"
                ):
                    action.type("10000000000")


@pytest.mark.parametrize(
    ("script", "flag", "value"),
    [
        ("input_opt.py", "--threads", "10000000000"),
        ("input-opt-regularized", "--jitter", "100000"),  # the regularized ascent moved to `python -m iml`
        ("input-opt-regularized", "--blur", "1e6"),
        ("mnist_integrated.py", "--steps", "1000000000000"),
        ("ig", "--noise-draws", "1000000000"),  # SmoothGrad moved to `python -m iml ig`
        ("ig", "--smoothgrad-sigma", "1e30"),
        ("deepfake_interpretation.py", "--batch-size", "1000000000000"),
        ("deepfake_interpretation.py", "--seed", str(2**70)),
    ],
)
def test_out_of_range_numbers_are_argparse_errors_with_exit_2(script, flag, value):
    if script.endswith(".py"):
        result = run_script(script, flag, value, timeout=120)
    else:
        result = run_iml(script, flag, value, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"argument {flag}: must be" in result.stderr


@pytest.mark.parametrize(("low", "high"), [(0, 14), (1, 100_000)])
def test_int_range_accepts_its_ends_and_refuses_beyond(low, high):
    parse = cli.int_range(low, high)
    assert parse(str(low)) == low and parse(str(high)) == high
    for bad in (str(low - 1), str(high + 1)):
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be an integer from {low} to {high}, got {bad}"):
            parse(bad)


def test_float_range_refuses_nan_inf_and_an_open_lower_end():
    parse = cli.float_range(0, 10, low_open=True)
    assert parse("10") == 10.0 and parse("1e-9") == 1e-9
    for bad in ("0", "nan", "inf", "10.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number above 0 to 10"):
            parse(bad)


def test_an_empty_path_is_refused_not_taken_for_the_current_folder():
    with pytest.raises(argparse.ArgumentTypeError, match="must name a file or folder, got an empty string"):
        cli.path_argument("")
    result = run_script("mnist_integrated.py", "--weights", "", "--train-only", timeout=120)
    assert result.returncode == 2 and "argument --weights: must name a file or folder" in result.stderr


def test_an_output_below_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(cli.UserError, match=r"lies below .*file, which is a file; give another folder\.$"):
        cli.check_output_folder(tmp_path / "file" / "figures")
    result = run_script("input_opt.py", "--out", tmp_path / "file" / "figures", "--steps", "1", timeout=120)
    assert_clear_error(result, "lies below", "which is a file")


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", read_only)
    with pytest.raises(
        cli.UserError, match=r"--out .*new cannot be written \(.*: Read-only file system\); give a folder"
    ):
        cli.check_output_folder(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_the_check_leaves_no_trace(tmp_path):
    cli.check_output_folder(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_an_output_inside_the_data_is_refused(tmp_path):
    with pytest.raises(cli.UserError, match=r"lies inside --data .*; give a folder outside it\.$"):
        cli.check_output_outside(tmp_path / "data" / "figures", {"--data": tmp_path / "data", "--real": None})
    cli.check_output_outside(tmp_path / "figures", {"--data": tmp_path / "data"})


def test_a_name_with_a_newline_cannot_forge_a_second_line(tmp_path):
    forged = tmp_path / "x\nerror: all is well"
    assert "\n" not in relative(forged) and relative(forged).startswith("'")
    assert cli.one_line("a\nb\rc") == "a\\nb\\rc"
    result = run_script("input_opt.py", "--weights", forged, timeout=120)
    assert_clear_error(result, "does not exist")
    assert result.stderr.count("\n") == 1


def test_a_mistyped_weights_file_points_to_the_one_that_exists(tmp_path):
    typo = WEIGHTS_PATH.with_name("weight.pth")
    assert cli.similar_file(typo) == WEIGHTS_PATH
    assert cli.similar_file(tmp_path / "zzz.pth") is None
    assert cli.user_message(CheckpointError(typo, "does not exist")) == (
        "weights file data/weight.pth does not exist, but data/weights.pth does; pass --weights data/weights.pth."
    )
    result = run_script("mnist_integrated.py", "--weights", "data/weight.pth", "--train-only", timeout=120)
    assert_clear_error(result, "data/weight.pth does not exist, but data/weights.pth does", "--retrain")
    assert "training a new network" not in result.stdout and not typo.exists()


def test_weights_that_name_a_folder_are_refused_before_training(tmp_path):
    result = run_script("mnist_integrated.py", "--weights", tmp_path, "--retrain", "--train-only", timeout=120)
    assert_clear_error(result, "is a folder; name the weights file")
    assert "epoch" not in result.stdout


def test_retraining_into_a_symbolic_link_is_refused_before_training(tmp_path):
    target, link = tmp_path / "shared.pth", tmp_path / "w.pth"
    target.write_bytes(b"someone else's weights")
    link.symlink_to(target)
    result = run_script("mnist_integrated.py", "--weights", link, "--retrain", "--train-only", timeout=120)
    assert_clear_error(
        result,
        f"--weights {link} is a symbolic link to {target}; a trained network is not written through a link nor "
        "over it: remove the link, or pass --weights with another file name.",
    )
    assert "epoch" not in result.stdout
    assert link.is_symlink() and target.read_bytes() == b"someone else's weights"


def test_a_link_put_in_place_during_training_is_neither_followed_nor_replaced(tmp_path, monkeypatch):
    import torch

    target, link = tmp_path / "shared.pth", tmp_path / "w.pth"
    target.write_bytes(b"someone else's weights")
    link.symlink_to(target)
    monkeypatch.setattr(mnist_cnn.tempfile, "gettempdir", lambda: str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    with pytest.raises(cli.UserError, match=r"could not write .*w\.pth \(it is a symbolic link now\); .* saved to"):
        mnist_cnn.save_trained(CNN(), {}, 0.99, link)
    assert link.is_symlink() and target.read_bytes() == b"someone else's weights"
    (rescued,) = (tmp_path / "rescue").glob("w.rescued-*.pth")
    assert torch.load(rescued, weights_only=True)["model"]["features.0.weight"].shape == (32, 1, 3, 3)


def test_a_trained_network_that_cannot_be_saved_is_saved_elsewhere_and_named(tmp_path, monkeypatch):
    import torch

    model = torch.nn.Linear(2, 2)
    calls = []

    def failing_once(path, *args):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        torch.save({"model": model.state_dict()}, path)

    monkeypatch.setattr(mnist_cnn, "save_checkpoint", failing_once)
    monkeypatch.setattr(mnist_cnn.tempfile, "gettempdir", lambda: str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    with pytest.raises(
        cli.UserError,
        match=r"could not write .*w\.pth \(No space left on device\); the trained network was saved to .*rescue",
    ):
        mnist_cnn.save_trained(model, {}, 0.99, tmp_path / "w.pth")
    (rescued,) = (tmp_path / "rescue").glob("w.rescued-*.pth")
    assert torch.load(rescued, weights_only=True)["model"]["weight"].shape == (2, 2)


def test_an_os_error_while_writing_is_one_line(capsys):
    def main():
        raise PermissionError(errno.EACCES, "Permission denied", "/x/figures/a.png")

    with pytest.raises(SystemExit) as info:
        cli.run_main(main)
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        "error: could not read or write /x/figures/a.png: Permission denied; nothing was left half-written.\n"
    )


def test_sigterm_exits_143_and_leaves_no_temporary_files(tmp_path):
    out = tmp_path / "figures"
    command = [sys.executable, str(ROOT / "src" / "input_opt.py"), "--steps", "100000", "--out", str(out)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_handler(child, signal.SIGTERM)  # past the imports: run_main has taken over SIGTERM
    time.sleep(2)  # into the ascent
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert (
        stderr.strip().splitlines()[-1]
        == "stopped by SIGTERM; nothing was written, and the files of earlier runs are as they were."
    )
    assert "Traceback" not in stderr
    assert not [p for p in (out.iterdir() if out.exists() else []) if p.name.startswith(".")]


def test_ctrl_c_still_exits_130(capsys):
    def main():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    with pytest.raises(SystemExit) as info:
        cli.run_main(main)
    assert info.value.code == 130
    assert (
        capsys.readouterr().err == "interrupted; nothing was written, and the files of earlier runs are as they were.\n"
    )


@pytest.mark.parametrize(
    "command", [["ffhq-examples"], ["ffhq-standin", "--per-class", "2"], ["ffhq-import", "--real", "r", "--fake", "f"]]
)
def test_the_data_commands_check_their_output_before_any_work(tmp_path, command):
    (tmp_path / "file").write_text("x")
    result = run_iml(*command, "--out", tmp_path / "file", timeout=120)
    assert_clear_error(result, "is a file, not a folder; give the name of a folder.")
    result = run_iml(*command, "--out", tmp_path / "file" / "below", timeout=120)
    assert_clear_error(result, "lies below", "which is a file; give another folder.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
