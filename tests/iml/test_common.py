"""src/iml/common.py: devices, seeding, atomic files and folders, leftovers of killed runs, the write
lock, worker pools, free-space checks."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from iml import cli
from iml.common import (
    HOST,
    ROOT,
    WEIGHTS_PATH,
    InputError,
    atomic_path,
    get_device,
    make_partial_folder,
    process_alive,
    relative,
    remove_leftovers,
    replace_folder,
    require_free_space,
    set_seed,
    write_lock,
)


def test_get_device_names_an_unknown_or_missing_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="unknown device 'banana'"):
        get_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(InputError) as info:
            get_device("cuda")
        assert info.value.hint == "device"
        assert "this machine has no CUDA GPU; use --device cpu or auto." in cli.user_message(info.value)


def test_get_device_refuses_a_non_device_name_that_torch_accepts():
    # torch.device("meta") is valid for torch, but no device to compute on
    with pytest.raises(InputError, match=r"^unknown device 'meta'; use auto, cpu, cuda, cuda:N or mps\.$"):
        get_device("meta")


def test_set_seed_repeats():
    set_seed(3)
    a = (torch.rand(3), np.random.rand(3))  # noqa: NPY002 - the global generator is what set_seed seeds
    set_seed(3)
    b = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_atomic_path_keeps_old_file_on_failure(tmp_path, interruption):
    target = tmp_path / "weights.pth"
    target.write_bytes(b"old")
    with pytest.raises(interruption), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise interruption("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pth"]


def test_atomic_path_replaces_the_file_on_success_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "weights.pth"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["weights.pth"]


def test_relative_shortens_paths_inside_the_repository_only(tmp_path):
    assert relative(WEIGHTS_PATH) == "data/weights.pth"
    assert relative(ROOT / "figures" / "x.png") == "figures/x.png"
    assert relative(tmp_path / "w.pth") == str((tmp_path / "w.pth").resolve())


def test_make_partial_folder_removes_stale_partial_folders(tmp_path):
    target = tmp_path / "dataset"
    stale = tmp_path / ".dataset.partial-old123"
    (stale / "inner").mkdir(parents=True)
    other = tmp_path / ".other.partial-1"
    other.mkdir()
    fresh = make_partial_folder(target)
    assert fresh.is_dir() and fresh.parent == tmp_path and fresh.name.startswith(f".dataset.partial-{os.getpid()}@")
    assert not stale.exists() and other.exists() and not target.exists()


def test_require_free_space_names_what_needs_the_space(tmp_path):
    require_free_space(tmp_path, 1, "the test")
    with pytest.raises(
        InputError, match=r"^the extraction needs 1000000000000\.00 GB free in .* but only .* GB is free"
    ):
        require_free_space(tmp_path / "not" / "yet", 10**21, "the extraction")


def dead_pid():
    """The id of a process that has ended (and been waited for)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_remove_leftovers_removes_what_ended_or_older_runs_left_and_nothing_else(tmp_path):
    dead, alive = dead_pid(), os.getpid()
    removed = [f".data.partial-{dead}@{HOST}-ab_d1234", ".data.partial-old", f".data.{dead}@{HOST}-abcd1234.tmp"]
    removed += [".data.abcd1234.tmp", f".data.partial-{dead}@{HOST}-old"]
    kept = [f".data.partial-{alive}@{HOST}-abcd1234", f".data.partial-{dead}@elsewhere-abcd1234"]
    kept += [
        f".data.{alive}@{HOST}-abcd1234.tmp",
        ".data.lock",
        "data",
        ".data.txt.abcd1234.tmp",
        ".database.partial-1",
    ]
    kept += [".data.bak", ".data.abcd12345.tmp", f".data.{dead}@{HOST}-abcd1234.tmp.keep"]
    for name in removed + kept:
        if "partial" in name:
            (tmp_path / name / "inner").mkdir(parents=True)
        else:
            (tmp_path / name).write_text("x")
    assert sorted(p.name for p in remove_leftovers(tmp_path / "data")) == sorted(removed)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_process_alive_tells_a_running_process_from_an_ended_or_zombie_one():
    assert process_alive(os.getpid()) and process_alive(1)
    assert not process_alive(dead_pid()) and not process_alive(0)
    assert process_alive(dead_pid(), host="another-machine")  # cannot be asked: kept
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(child.pid)
        child.kill()
        time.sleep(0.5)  # not waited for yet: a zombie
        assert not process_alive(child.pid)
    finally:
        child.wait()


def test_replace_folder_puts_the_old_folder_back_when_interrupted(tmp_path, monkeypatch):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "old.txt").write_text("old")
    (tmp_path / "new").mkdir()
    rename, calls = os.rename, []

    def interrupted(source, destination):
        calls.append(destination)
        if len(calls) == 2:  # between setting the old folder aside and moving the new one in
            raise KeyboardInterrupt
        rename(source, destination)

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(tmp_path / "new", tmp_path / "target")
    assert len(calls) == 3 and os.listdir(tmp_path / "target") == ["old.txt"]
    assert sorted(os.listdir(tmp_path)) == ["new", "target"]


def test_write_lock_records_its_owner_is_reentrant_and_leaves_no_file(tmp_path):
    target = tmp_path / "sub" / "dataset"
    lock = tmp_path / "sub" / ".dataset.lock"
    with write_lock(target):
        assert lock.read_text() == f"{os.getpid()}@{HOST}\n"
        with write_lock(target):  # a function that takes it calls another that does
            assert lock.exists()
        assert lock.exists()
    assert os.listdir(tmp_path / "sub") == []
    lock.write_text("12345@somewhere\n")  # left by a killed run: taken over
    with write_lock(target):
        assert lock.read_text() == f"{os.getpid()}@{HOST}\n"
    assert not lock.exists()
