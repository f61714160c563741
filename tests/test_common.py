"""src/common.py: devices, seeding, atomic files and folders, free-space checks."""

import numpy as np
import pytest
import torch

import cli
from common import (
    ROOT,
    WEIGHTS_PATH,
    InputError,
    atomic_path,
    get_device,
    make_partial_folder,
    relative,
    require_free_space,
    set_seed,
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


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "weights.pth"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
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
    assert fresh.is_dir() and fresh.parent == tmp_path and fresh.name.startswith(".dataset.partial-")
    assert not stale.exists() and other.exists() and not target.exists()


def test_require_free_space_names_what_needs_the_space(tmp_path):
    require_free_space(tmp_path, 1, "the test")
    with pytest.raises(
        InputError, match=r"^the extraction needs 1000000000000\.00 GB free in .* but only .* GB is free"
    ):
        require_free_space(tmp_path / "not" / "yet", 10**21, "the extraction")
