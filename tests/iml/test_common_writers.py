"""Two runs writing the same output, runs killed half-way and Ctrl-C with worker processes, each
with real processes: the second run fails fast and leaves the first one's work alone, what a killed
run left is removed by the next, and Ctrl-C ends in one line with no worker tracebacks."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import assert_clear_error, raises_explained, run_iml
from test_download import dataset_zip

from iml import common, download
from iml.common import ROOT, atomic_path, make_partial_folder, relative
from iml.standin import make_standin

# Runs `body` with src/ importable; `wait()` prints "blocked" and waits until the file GO exists.
PRELUDE = """
import pathlib, sys, time
sys.path.insert(0, {src!r})
GO = pathlib.Path({go!r})

def wait(*args, **kwargs):
    print("blocked", flush=True)
    while not GO.exists():
        time.sleep(0.02)
"""


@contextlib.contextmanager
def blocked_process(tmp_path, body):
    """A Python process running `body` (after PRELUDE), yielded once it printed "blocked"; the test
    lets it go on by creating the file `go`, and it is killed if still running at the end."""
    go = tmp_path / "go"
    code = PRELUDE.format(src=str(ROOT / "src"), go=str(go)) + textwrap.dedent(body)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = process.stdout.readline()
        if not line.startswith("blocked"):
            process.kill()
            pytest.fail(f"the first run did not start: {process.communicate()[1]}")
        yield process, go
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def hidden(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_a_second_standin_run_fails_fast_and_the_first_one_finishes(tmp_path):
    out = tmp_path / "standin"
    body = f"""
        from iml import standin
        write = standin.write_standin_images
        standin.write_standin_images = lambda *args: (write(*args), wait())
        standin.make_standin(pathlib.Path({str(out)!r}), per_class=3, seed=0, workers=1)
    """
    with blocked_process(tmp_path, body) as (first, go):
        partial = [name for name in hidden(tmp_path) if name.startswith(".standin.partial-")]
        assert len(partial) == 1 and partial[0].startswith(f".standin.partial-{first.pid}@")
        second = run_iml("ffhq-standin", "--out", out, "--per-class", "2", "--force", timeout=120)
        assert_clear_error(
            second, f"error: another run is writing {relative(out)} (process {first.pid}); wait for it or stop it."
        )
        assert (tmp_path / partial[0] / "A_ffhq" / "00002.png").is_file()  # the first run's work is intact
        go.touch()
        assert first.wait(timeout=120) == 0, first.communicate()[1]
    download.verify_ffhq(out, per_folder=3)
    assert sorted(os.listdir(tmp_path)) == ["go", "standin"]  # no partial folder, no lock file


def test_a_second_extraction_fails_fast_and_the_first_one_finishes(tmp_path, monkeypatch):
    zip_path = dataset_zip(tmp_path / "in.zip", per_folder=3)
    target = tmp_path / "data" / "ffhq_style_gan"
    body = f"""
        from iml import download
        write = download.write_member
        download.write_member = lambda *args: (wait(), write(*args))
        download.extract_zip({str(zip_path)!r}, pathlib.Path({str(target)!r}))
    """
    with blocked_process(tmp_path, body) as (first, go):
        monkeypatch.setattr(common, "free_disk_bytes", lambda path: 10**12)
        with raises_explained(
            rf"^another run is writing .*ffhq_style_gan \(process {first.pid}\); wait for it or stop it\.$"
        ):
            download.extract_zip(zip_path, target)
        assert len(hidden(target.parent)) == 2  # the first run's partial folder and its lock
        go.touch()
        assert first.wait(timeout=120) == 0, first.communicate()[1]
    download.verify_ffhq(target / "source_data", per_folder=3)
    assert os.listdir(target.parent) == ["ffhq_style_gan"]


def test_what_a_killed_run_left_is_removed_by_the_next_but_a_live_runs_is_kept(tmp_path):
    out, weights = tmp_path / "standin", tmp_path / "weights.pth"
    body = f"""
        from iml import common
        out = pathlib.Path({str(out)!r})
        with common.write_lock(out), common.atomic_path(out.parent / "weights.pth") as tmp:
            common.make_partial_folder(out)
            tmp.write_bytes(b"half")
            wait()
    """
    with blocked_process(tmp_path, body) as (first, _):
        left = hidden(tmp_path)
        assert len(left) == 3, left  # its lock file, partial folder and temporary file
        with raises_explained(rf"another run is writing .*standin \(process {first.pid}\)"):
            make_standin(out, per_class=2, workers=1)
        common.remove_path(make_partial_folder(out))
        with atomic_path(weights) as tmp:
            tmp.write_bytes(b"whole")
        assert hidden(tmp_path) == left  # a live run's files are kept
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    make_standin(out, per_class=2, workers=1)
    with atomic_path(weights) as tmp:
        tmp.write_bytes(b"new")
    assert sorted(os.listdir(tmp_path)) == ["standin", "weights.pth"]
    assert weights.read_bytes() == b"new"


def test_ctrl_c_with_worker_processes_ends_in_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "standin"
    command = [sys.executable, "-m", "iml", "ffhq-standin", "--out", str(out)]
    command += ["--per-class", "1000", "--workers", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT / "src"))
    # its own process group, as a terminal makes one: Ctrl-C reaches the parent and every worker
    run = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".standin.partial-*/A_ffhq/*.png")) and run.poll() is None:
            assert time.monotonic() < deadline, "no image was written"
            time.sleep(0.02)
        os.killpg(run.pid, signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines() == [
        "interrupted; nothing was written, and the files of earlier runs are as they were."
    ]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("number", "status", "line"), [(signal.SIGINT, 130, "interrupted;"), (signal.SIGTERM, 143, "")]
)
def test_ctrl_c_or_sigterm_to_idle_workers_is_reported_once_by_the_parent(number, status, line):
    # workers waiting for their next job used to die with a KeyboardInterrupt traceback each
    code = f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / "src")!r})
        from iml.cli import run_main
        from iml.processes import worker_pool

        def main():
            with worker_pool(2) as pool:
                assert sorted(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]
                print("idle", flush=True)
                time.sleep(60)

        run_main(main)
    """
    run = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert run.stdout.readline() == "idle\n"
        os.killpg(run.pid, number)  # to the whole group, as a terminal's Ctrl-C or SLURM's scancel
        _, stderr = run.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == status, stderr
    lines = [entry for entry in stderr.splitlines() if entry.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), stderr  # cli.run_main's one line, no worker's traceback
