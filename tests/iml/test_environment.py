"""Paths and surroundings a user can get wrong: symbolic link loops on every path option, a plotting
backend matplotlib refuses, and a terminal whose encoding cannot show a path."""

import re

import pytest
from conftest import argparse_error, assert_clear_error, every_parser, run_iml, run_script

from iml import cli
from iml.__main__ import main as iml_main

LOOP = "goes through a symbolic link loop (a link that leads back to itself); remove the link or give another path"


@pytest.fixture
def loop(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path / "loop"


def path_options(parser):
    return [a for a in parser._actions if a.type is cli.path_argument]


PATH_OPTIONS = [(name, parser, a) for name, parser in every_parser() for a in path_options(parser)]


@pytest.mark.parametrize(
    ("name", "parser", "action"), PATH_OPTIONS, ids=[f"{n}{a.option_strings}" for n, _, a in PATH_OPTIONS]
)
def test_every_path_option_refuses_a_link_loop_before_any_work(name, parser, action, loop, capsys):
    for path in (loop, loop / "below"):
        argv = [action.option_strings[0], str(path)] if action.option_strings else [str(path)]
        assert f"{path} {LOOP}" in argparse_error(parser, argv, capsys)


def test_there_are_path_options_to_check():
    assert len(PATH_OPTIONS) >= 20


@pytest.mark.parametrize("argv", [["handout", "--out"], ["grade"], ["grade", "--json"]])
def test_handout_and_grade_refuse_a_link_loop(argv, loop, capsys):
    with pytest.raises(SystemExit) as info:
        iml_main([*argv, str(loop)])
    assert info.value.code == 2 and LOOP in capsys.readouterr().err


def test_an_output_folder_below_a_link_loop_is_refused(loop):
    with pytest.raises(cli.UserError, match=f"^--out .*loop/a {re.escape(LOOP)}.$"):
        cli.check_output_folder(loop / "a")


def test_a_plotting_backend_matplotlib_refuses_is_replaced_by_agg_before_the_work(tmp_path):
    result = run_iml(
        "input-opt-regularized", "--neuron", "3", "--steps", "2", "--out", tmp_path, env={"MPLBACKEND": "nosuch"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "note: MPLBACKEND='nosuch' cannot be used (Key backend: 'nosuch' is not a valid value for backend); "
        "drawing with Agg."
    )
    assert (tmp_path / "input_opt_regularized.png").exists()


def noise_faces(folder, per_class):
    """`per_class` random 128x128 PNGs in each of the real and fake folders that Task 3 reads."""
    from conftest import write_png

    import util

    for i in range(per_class):
        write_png(folder / util.REAL_FOLDER / f"{i:05d}.png", seed=i)
        write_png(folder / util.FAKE_FOLDER / f"style_gan_ffhq_example{i}.png", seed=1000 + i)
    return folder


SCRIPT_RUNS = {  # short runs of the three exercise scripts, and the figures each writes
    "input_opt.py": (["--neuron", "3", "--steps", "2"], ["input_opt_curves.png", "input_opt_grid.png"]),
    "mnist_integrated.py": (["--per-class", "1", "--steps", "8"], ["ig_attributions.png", "ig_class_means.png"]),
    "deepfake_interpretation.py": (
        ["--train-size", "6", "--val-size", "2", "--test-size", "4", "--epochs", "1"],
        ["deepfake_spectra.png", "deepfake_weights.png"],
    ),
}


@pytest.mark.parametrize("script", SCRIPT_RUNS)
def test_the_scripts_too_draw_with_agg_when_matplotlib_refuses_the_backend(script, tmp_path):
    """The scripts import matplotlib only where they draw, after iml.cli replaced a backend it refuses."""
    options, figures = SCRIPT_RUNS[script]
    data = ["--data", noise_faces(tmp_path / "data", 12)] if script.startswith("deepfake") else []
    result = run_script(script, *options, *data, "--out", tmp_path / "out", env={"MPLBACKEND": "nosuch"})
    assert result.returncode == 0, result.stderr
    note = "note: MPLBACKEND='nosuch' cannot be used (Key backend: 'nosuch' is not a valid value for backend); "
    assert note + "drawing with Agg." in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == figures


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("module://nonexistent", "its module cannot be imported: ModuleNotFoundError"),
        ("module://os", "its module is not a matplotlib backend: it has no FigureCanvas"),
    ],
)
def test_a_backend_module_that_cannot_draw_is_replaced_before_the_work(name, reason, tmp_path):
    """matplotlib takes any module:// name as it loads and fails only at the first figure, after the work."""
    result = run_script("input_opt.py", "--neuron", "3", "--steps", "2", "--out", tmp_path, env={"MPLBACKEND": name})
    assert result.returncode == 0, result.stderr
    assert f"note: MPLBACKEND='{name}' cannot be used ({reason}); drawing with Agg." in result.stderr.splitlines()
    assert (tmp_path / "input_opt_grid.png").exists()


def test_any_output_encoding_can_show_a_path(tmp_path):
    out = tmp_path / "bilder-ä"
    result = run_script(
        "input_opt.py", "--neuron", "3", "--steps", "2", "--out", out, env={"PYTHONIOENCODING": "ascii"}
    )
    assert result.returncode == 0, result.stderr
    assert "bilder-\\xe4/input_opt_grid.png" in result.stdout
    failing = run_script("input_opt.py", "--weights", out / "nö.pth", env={"PYTHONIOENCODING": "ascii"})
    assert_clear_error(failing, "n\\xf6.pth does not exist")


def test_all_black_faces_draw_without_a_warning_even_under_w_error(tmp_path):
    import numpy as np
    from conftest import write_png

    import util

    black = np.zeros((util.IMAGE_SIZE, util.IMAGE_SIZE, 3), np.uint8)
    for i in range(12):
        write_png(tmp_path / "data" / util.REAL_FOLDER / f"{i:05d}.png", array=black)
        write_png(tmp_path / "data" / util.FAKE_FOLDER / f"style_gan_ffhq_example{i}.png", array=black)
    sizes = ["--train-size", "6", "--val-size", "2", "--test-size", "4", "--epochs", "1"]
    result = run_script(
        "deepfake_interpretation.py", "--data", tmp_path / "data", *sizes, "--out", tmp_path / "out",
        env={"PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["deepfake_spectra.png", "deepfake_weights.png"]


def test_ctrl_c_stops_a_run_even_when_the_parent_ignored_it():
    import signal
    import subprocess
    import sys

    from iml.common import ROOT

    code = (
        f"import os, signal, sys, time; sys.path.insert(0, {str(ROOT / 'src')!r}); from iml.cli import run_main; "
        "run_main(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(30)))"
    )
    ignoring = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a background job of a shell
    )
    assert ignoring.returncode == 130, ignoring.stderr
    assert ignoring.stderr.startswith("interrupted; nothing was written")
