"""src/iml/progress.py: the bars of long loops on a terminal and in a log, what they count, and that an
error's one line never shares a line with a bar; then the bars of the scripts as a user sees them."""

import io
import sys

import pytest
import torch
from conftest import run_script
from tqdm import tqdm

import mnist_integrated
import util
from iml import cli
from iml.attribution import attribute_in_chunks
from iml.integrated_fast import fast_twin, integrate_gradients_fast
from iml.progress import LOG_INTERVAL, optimizer_steps, progress


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def open_bars():
    return [bar for bar in list(tqdm._instances) if not bar.disable]


def test_in_a_log_a_bar_writes_nothing_for_30_seconds_and_then_at_most_a_line_every_30(monkeypatch, capsys):
    monkeypatch.delenv("IML_PROGRESS_INTERVAL", raising=False)
    bar = progress(range(3), unit="digits", desc="IG")
    assert LOG_INTERVAL == 30 and bar.mininterval == bar.maxinterval == bar.delay == LOG_INTERVAL
    assert list(bar) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # a loop shorter than the interval leaves the log as it was


def test_in_a_log_each_update_is_one_whole_line_with_the_unit_and_the_total(monkeypatch, capsys):
    monkeypatch.setenv("IML_PROGRESS_INTERVAL", "0")
    for _ in progress(range(4), unit="digits", desc="Integrated Gradients"):
        pass
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and err.endswith("\n")
    assert [line.split("|")[0] for line in lines] == [f"Integrated Gradients: {p:3d}%" for p in (0, 25, 50, 75, 100)]
    assert all(f"| {n}/4 digits [" in line for n, line in enumerate(lines))  # the close repeats no count


def test_on_a_terminal_the_bar_is_redrawn_in_place(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress(total=300_000, unit="points", desc="IG") as bar:
        bar.update(300_000)
    text = sys.stderr.getvalue()
    assert bar.mininterval == 0.1 and bar.delay == 0
    assert text.startswith("\rIG:   0%") and "\rIG: 100%" in text and "300k/300k points" in text


def test_an_error_clears_the_open_bars_and_stays_one_line(monkeypatch, capsys):
    monkeypatch.setenv("IML_PROGRESS_INTERVAL", "0")

    def stop_halfway():
        for step in progress(range(4), unit="steps", desc="ascent"):
            if step == 2:
                raise cli.UserError("stopped halfway.")

    with pytest.raises(SystemExit):
        cli.run_main(stop_halfway)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "error: stopped halfway." and all(line.startswith("ascent: ") for line in lines[:-1])
    assert not open_bars()


def test_on_a_terminal_an_error_erases_the_bar_before_its_line(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())

    def stop():
        bar = progress(total=4, unit="images", desc="importing")  # no `with`: the error leaves it open
        bar.update(1)
        raise cli.UserError("stopped.")

    with pytest.raises(SystemExit):
        cli.run_main(stop)
    drawn, cleared, error = sys.stderr.getvalue().rsplit("\r", 2)
    assert "importing:   0%" in drawn and cleared.strip() == "" and error == "error: stopped.\n"


def test_optimizer_steps_counts_every_step_while_the_block_runs(monkeypatch, capsys):
    monkeypatch.setenv("IML_PROGRESS_INTERVAL", "0")
    x = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=0.1)
    with optimizer_steps(5, "ascent") as bar:
        for _ in range(5):
            x.grad = torch.ones(3)
            optimizer.step()
    optimizer.step()  # after the block: the hook is gone
    assert bar.n == 5 and "| 5/5 steps [" in capsys.readouterr().err.splitlines()[-1]


def test_batches_hand_out_every_item_once_and_count_them(monkeypatch, capsys):
    monkeypatch.setenv("IML_PROGRESS_INTERVAL", "0")
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    handed = list(util.batches(order, 4, "epoch 1", "digits"))
    assert [len(b) for b in handed] == [4, 4, 2] and torch.equal(torch.cat(handed), order)
    assert "epoch 1: 100%" in capsys.readouterr().err.splitlines()[-1]


def test_the_fast_path_counts_its_path_points_with_a_partial_last_chunk(shipped_model, digits, monkeypatch):
    monkeypatch.setenv("IML_PROGRESS_INTERVAL", "0")
    images, labels = digits[0][:5], digits[1][:5]
    with progress(total=5 * 3, unit="points", desc="IG") as bar:
        integrate_gradients_fast(shipped_model, images, labels, 3, batch_points=6, progress=bar)  # chunks 2, 2, 1
    assert bar.n == 15


@pytest.mark.parametrize("twin", [False, True])
def test_chunks_behind_the_bar_give_the_numbers_of_one_call(shipped_model, digits, twin):
    images, labels = digits  # m = 150: 3 digits a chunk, as the fast twin takes them
    ig = fast_twin() if twin else mnist_integrated.integrate_gradients
    assert torch.equal(
        attribute_in_chunks(ig, shipped_model, images, labels, 150), ig(shipped_model, images, labels, 150)
    )


def test_the_script_shows_its_bar_outside_a_terminal_and_an_early_error_as_one_line(tmp_path):
    env = {"IML_PROGRESS_INTERVAL": "0"}
    result = run_script(
        "mnist_integrated.py", "--per-class", 1, "--steps", 2, "--device", "cpu", "--out", tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Integrated Gradients, m = 2: 100%|██████████| 10/10 digits [" in result.stderr.splitlines()[-1]
    (tmp_path / "file").write_text("")
    result = run_script("mnist_integrated.py", "--retrain", "--out", tmp_path / "file", env=env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
