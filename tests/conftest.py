"""Fixtures and helpers the test files share: real MNIST, the shipped network, running a script as a
user would, and writing image files."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import util
from common import ROOT, WEIGHTS_PATH

# The tests share two CPU cores; more threads than cores only adds contention.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def mnist_test():
    """The real 10,000 MNIST test digits as (uint8 images, int64 labels), fetched once."""
    return util.get_mnist_test_data()


@pytest.fixture(scope="session")
def mnist_train():
    """The real 60,000 MNIST training digits as (uint8 images, int64 labels)."""
    return util.get_mnist_train_data()


@pytest.fixture(scope="session")
def shipped_model():
    """The CNN with the shipped data/weights.pth, in eval mode on the CPU."""
    from models import load_cnn

    return load_cnn(WEIGHTS_PATH)


def run_script(script, *args, timeout=300, cwd=ROOT):
    """Run `python src/<script> args` as a user would, without a terminal; returns the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def assert_clear_error(result, *fragments):
    """A non-zero exit with one `error: ...` sentence on stderr that holds every fragment, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def random_pixels(size=(util.IMAGE_SIZE, util.IMAGE_SIZE), mode="RGB", seed=0):
    """Random uint8 pixels for a Pillow image of `mode` ("RGB", "RGBA" or "L") and `size` (width, height)."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return pixels[:, :, 0] if channels == 1 else pixels


def png_bytes(size=(util.IMAGE_SIZE, util.IMAGE_SIZE), mode="RGB", seed=0, array=None):
    """The bytes of a PNG file: `array` (uint8), or random pixels of `mode` and `size`."""
    buffer = io.BytesIO()
    Image.fromarray(random_pixels(size, mode, seed) if array is None else array).save(buffer, format="png")
    return buffer.getvalue()


def write_png(path, array=None, mode="RGB", size=util.IMAGE_SIZE, seed=0):
    """Write a PNG file (random pixels unless `array` is given), creating its folder; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes((size, size), mode, seed, array))
    return path


def save_pngs(folder, arrays):
    """Write each uint8 array as 00.png, 01.png, ... in `folder`; returns the paths."""
    return [write_png(folder / f"{i:02d}.png", array) for i, array in enumerate(arrays)]
