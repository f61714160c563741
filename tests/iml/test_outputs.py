"""Where runs write and how: every default output folder is git-ignored, a run's figures go in
together or not at all, a new set leaves no figure of an older one behind, a stopped run says what
it wrote, and retraining leaves the shipped weights alone."""

import os
import re
import signal
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import pytest
from conftest import every_parser, wait_for_handler

import deepfake_interpretation
import input_opt
import mnist_integrated
from iml import cli, common, outputs
from iml.common import ROOT, WEIGHTS_PATH
from iml.mnist_cnn import RETRAINED_PATH, weights_path
from iml.outputs import OUTPUTS_DIR, figure_set, save_figure, write_figures


def tiny_figure(value=0.0):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [value, value])
    return fig


def out_default(parser):
    return next((a.default for a in parser._actions if a.dest == "out"), None)


@pytest.mark.parametrize(("name", "parser"), every_parser(), ids=lambda value: value if isinstance(value, str) else "")
def test_no_default_output_lies_in_a_tracked_folder(name, parser):
    default = out_default(parser)
    if default is None:  # mnist and ffhq-download write only into data/
        return
    default = default.resolve()
    assert default.is_relative_to(OUTPUTS_DIR) or default.is_relative_to(ROOT / "data"), (name, default)
    tracked = subprocess.run(
        ["git", "ls-files", str(default)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert tracked == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default / "x.png")], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{name}: {default} is not git-ignored"


def test_the_scripts_write_to_a_folder_of_their_own():
    defaults = {out_default(parser) for _, parser in every_parser()} - {None}
    assert out_default(input_opt.build_parser()) == OUTPUTS_DIR / "input_opt"
    assert out_default(mnist_integrated.build_parser()) == OUTPUTS_DIR / "mnist_integrated"
    assert out_default(deepfake_interpretation.build_parser()) == OUTPUTS_DIR / "deepfake_interpretation"
    assert len([d for d in defaults if d.is_relative_to(OUTPUTS_DIR)]) == 10  # no two share a folder


def test_a_set_is_written_whole(tmp_path):
    written = write_figures({"a.png": tiny_figure(), "b.png": tiny_figure()}, tmp_path, "demo")
    assert written == [tmp_path / "a.png", tmp_path / "b.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.figures", "a.png", "b.png"]
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_a_failed_run_leaves_the_previous_set_as_it_was(tmp_path):
    write_figures({"a.png": tiny_figure(), "b.png": tiny_figure()}, tmp_path, "demo")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError), figure_set(tmp_path, "demo"):
        save_figure(tiny_figure(1.0), tmp_path / "a.png")
        raise RuntimeError("stopped between two figures")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file either


def test_a_new_set_removes_what_the_last_set_of_the_same_command_drew(tmp_path):
    write_figures({"a.png": tiny_figure(), "b.png": tiny_figure()}, tmp_path, "demo")
    write_figures({"other.png": tiny_figure()}, tmp_path, "another")
    (tmp_path / "mine.png").write_bytes(b"not ours")
    write_figures({"a.png": tiny_figure(1.0)}, tmp_path, "demo")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png", "mine.png", "other.png"]
    with figure_set(tmp_path, "demo"):  # a run that draws nothing leaves nothing of the last one
        pass
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["mine.png", "other.png"]


def test_a_manifest_never_removes_files_outside_its_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "keep.png").write_bytes(b"x")
    (tmp_path / "out" / ".demo.figures").write_text("../keep.png\n.hidden\nkeep.png/..\n")
    write_figures({"a.png": tiny_figure()}, tmp_path / "out", "demo")
    assert (tmp_path / "keep.png").exists()


def test_a_signal_during_the_renames_waits_until_the_set_is_complete(tmp_path, monkeypatch):
    replace = os.replace

    def replace_then_signal(source, target):
        replace(source, target)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between the first and the second rename

    previous = signal.signal(signal.SIGTERM, cli._terminate)
    monkeypatch.setattr(outputs.os, "replace", replace_then_signal)
    try:
        with pytest.raises(cli.Terminated), figure_set(tmp_path, "demo"):
            save_figure(tiny_figure(), tmp_path / "a.png")
            save_figure(tiny_figure(), tmp_path / "b.png")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png", "b.png"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_stop_message_names_what_was_written(monkeypatch):
    monkeypatch.setattr(common, "_written", [])
    assert cli.stop_message("interrupted") == (
        "interrupted; nothing was written, and the files of earlier runs are as they were."
    )
    common.record_written(OUTPUTS_DIR / "x" / "a.png")
    common.record_written(ROOT / "data" / "weights_retrained.pth")
    assert cli.stop_message("stopped by SIGTERM") == (
        "stopped by SIGTERM; written before the stop: outputs/x/a.png, data/weights_retrained.pth; "
        "nothing else was written."
    )


def test_a_script_stopped_before_its_figures_keeps_the_earlier_ones(tmp_path):
    out = tmp_path / "out"
    write_figures({"input_opt_grid.png": tiny_figure(), "input_opt_curves.png": tiny_figure()}, out, "input_opt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    command = [sys.executable, str(ROOT / "src" / "input_opt.py"), "--steps", "100000", "--out", str(out)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_handler(child, signal.SIGTERM)
    time.sleep(2)  # into the ascent
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert stderr.splitlines()[-1] == (
        "stopped by SIGTERM; nothing was written, and the files of earlier runs are as they were."
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_retraining_writes_beside_the_shipped_weights(tmp_path):
    assert weights_path(None, retrain=False) == WEIGHTS_PATH
    assert weights_path(None, retrain=True) == RETRAINED_PATH == ROOT / "data" / "weights_retrained.pth"
    assert weights_path(WEIGHTS_PATH, retrain=True) == WEIGHTS_PATH  # only when asked by name
    assert weights_path(tmp_path / "w.pth", retrain=True) == tmp_path / "w.pth"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(RETRAINED_PATH)], cwd=ROOT, check=False)
    assert ignored.returncode == 0
    args = mnist_integrated.build_parser().parse_args(["--retrain", "--out", str(tmp_path)])
    assert args.weights is None  # chosen by prepare(), which knows about --retrain


def bash_blocks(text):
    """(marker comment or "", command lines without comments) of each ```bash block of a Markdown text."""
    blocks = re.findall(r"(<!-- [\w-]+ -->\n)?```bash\n(.*?)```", text, re.DOTALL)
    return [
        (marker, [line.split("#")[0].strip() for line in body.splitlines() if line.strip()]) for marker, body in blocks
    ]


def test_only_the_readme_refresh_block_writes_into_figures():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    refresh = []
    for document in documents:
        for marker, lines in bash_blocks(document.read_text()):
            if "refresh-figures" in marker:
                refresh += lines
            else:
                assert not [line for line in lines if re.search(r"--out figures\b", line)], document
    assert refresh and all(re.search(r"--out (figures|data/\w+)$", line) for line in refresh), refresh
    shown = {name for d in documents for name in re.findall(r"\]\((?:\.\./)?figures/([\w.]+\.png)\)", d.read_text())}
    assert shown == {path.name for path in (ROOT / "figures").glob("*.png")}  # every figure shown, none besides
