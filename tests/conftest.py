"""Fixtures and helpers the test files share: real MNIST, the shipped network, small test networks,
running a script as a user would, the line `cli.user_message` makes of an error, generated command lines
(hypothesis), and writing image files."""

import contextlib
import copy
import io
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

import util
from iml import cli
from iml.common import ROOT, WEIGHTS_PATH, InputError
from iml.mnist_cnn import to_float_images
from models import CheckpointError

# Real FFHQ photographs and StyleGAN fakes, beside the repository (not in it): see its README.md.
SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"
needs_shared_faces = pytest.mark.skipif(
    not ((SHARED_FACES / "real").is_dir() and (SHARED_FACES / "fake").is_dir()),
    reason="needs ../shared/data/faces (real FFHQ and StyleGAN faces)",
)

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


@pytest.fixture(scope="module")
def model64(shipped_model):
    """The shipped CNN in float64, for comparisons at 1e-6 and 1e-10."""
    return copy.deepcopy(shipped_model).double()


@pytest.fixture(scope="module")
def digits(mnist_test):
    """Six real test digits (N, 1, 28, 28) in [0, 1] and their labels."""
    images, labels = mnist_test
    return to_float_images(images[:6], "cpu"), labels[:6]


def linear_model():
    """A linear network (N, 1, 28, 28) -> (N, 10) in float64: IG is exact for it at any m."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double().eval()


def smooth_model():
    """A smooth (tanh) network (N, 1, 28, 28) -> (N, 10) in float64, whose IG converges like the rules' orders."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).double().eval()


@pytest.fixture
def weights_copy(tmp_path):
    """A copy of the shipped weights in a temporary folder, for tests that damage or replace them."""
    path = tmp_path / "weights.pth"
    path.write_bytes(WEIGHTS_PATH.read_bytes())
    return path


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test leaves open."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


class RunsCommand:
    """Pickles to `os.system(command)`: loading it with plain pickle runs the command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def random_images(shape, seed=0):
    """Random uint8 images of `shape`, e.g. (N, H, W, C)."""
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def cnn_turning_nan(after_calls):
    """A CNN class whose outputs turn NaN after `after_calls` forward calls, as a diverging training run's do."""
    from models import CNN

    class TurnsNaN(CNN):
        calls = 0

        def forward(self, x):
            TurnsNaN.calls += 1
            out = super().forward(x)
            return out * float("nan") if TurnsNaN.calls > after_calls else out

    return TurnsNaN


# Every script a test runs gets at most this much address space (torch alone maps about 3 GiB), so
# an input that makes a script allocate without bound fails its test instead of the machine.
SCRIPT_MEMORY_LIMIT = 8 * 2**30


def limit_memory():
    """preexec_fn of a test's child process: cap its address space at SCRIPT_MEMORY_LIMIT."""
    resource.setrlimit(resource.RLIMIT_AS, (SCRIPT_MEMORY_LIMIT, SCRIPT_MEMORY_LIMIT))


def run_as_user(argv, timeout, cwd, env):
    """Run `argv` as a user would, without a terminal and under a memory limit; returns the CompletedProcess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **env}
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit_memory,
    )


def wait_for_handler(child, number, timeout=120):
    """Wait until process `child` catches signal `number` (its bit in /proc/PID/status's SigCgt), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        with open(f"/proc/{child.pid}/status") as status:
            caught = next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))
        if caught >> (number - 1) & 1:
            return
        time.sleep(0.05)
    pytest.fail(f"process {child.pid} did not take over signal {number}")


def run_script(script, *args, timeout=300, cwd=ROOT, env=None):
    """Run `python src/<script> args` as a user would, with the variables `env` added; returns the CompletedProcess."""
    return run_as_user([sys.executable, str(ROOT / "src" / script), *map(str, args)], timeout, cwd, env or {})


def run_iml(*args, timeout=300, cwd=ROOT, env=None):
    """Run `python -m iml args` as a user would (src/ on PYTHONPATH, as `pip install -e .` puts it)."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "iml", *map(str, args)]
    return run_as_user(argv, timeout, cwd, {"PYTHONPATH": path, **(env or {})})


def every_parser():
    """(name, parser) of each script and of each `python -m iml` command that has a `build_parser`."""
    import argparse
    import importlib

    import deepfake_interpretation
    import input_opt
    import mnist_integrated
    from iml.__main__ import COMMANDS

    parsers = [(m.__name__, m.build_parser()) for m in (input_opt, mnist_integrated, deepfake_interpretation)]
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        if not hasattr(module, "build_parser"):  # handout and grade build theirs in main
            continue
        parser = module.build_parser()
        for action in parser._actions:  # the data commands share one parser with subcommands
            if isinstance(action, argparse._SubParsersAction):
                parser = action.choices[name]
        parsers.append((name, parser))
    return parsers


def argparse_error(parser, argv, capsys):
    """What `parser` printed on stderr when it refused `argv`, which it must do with exit status 2."""
    with pytest.raises(SystemExit) as info:
        parser.parse_args(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


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


VALUES = ["-1", "0", "1", "2", "3", "1e-3", "1e38", "nan", "inf", "x", "", "all", "10", "cpu", "cuda", "tpu", "auto"]
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextlib.contextmanager
def raises_explained(pattern, error_type=InputError):
    """Like pytest.raises(error_type, match=pattern), but matched against the line the user reads,
    `cli.user_message(error)`: the error's facts plus the flag or command its hint chooses."""
    with pytest.raises(error_type) as info:
        yield info
    line = cli.user_message(info.value)
    assert re.search(pattern, line), line


def options(parser, excluded):
    """(flag, takes_value, choices) for every option of `parser` except `excluded` and --help."""
    found = []
    for action in parser._actions:
        flags = [f for f in action.option_strings if f.startswith("--")]
        if not flags or flags[0] in excluded or flags[0] == "--help":
            continue
        found.append((flags[0], action.nargs != 0, action.choices))
    return found


def argument_lists(parser, excluded, max_size=4):
    """Lists of up to `max_size` options of `parser` (not `excluded`), each with a value from VALUES."""

    def render(option, value):
        flag, takes_value, choices = option
        if not takes_value:
            return [flag]
        if choices and value == "x":
            value = list(choices)[0]  # reach the code behind a valid choice, too
        return [flag, value]

    pairs = st.tuples(st.sampled_from(options(parser, excluded)), st.sampled_from(VALUES))
    return st.lists(pairs, max_size=max_size).map(lambda items: [a for o, v in items for a in render(o, v)])


def run_cli(module, argv, monkeypatch, script=None):
    """Call `module.main()` as `python src/<script> argv` would; return the outcome.

    "user error": a cli.UserError, common.InputError or models.CheckpointError, which `cli.run_main`
    prints as one line: that line must be one sentence. "argparse": argparse refused the arguments
    (exit 2) or printed help (exit 0). "ran": main returned.
    """
    monkeypatch.setattr(sys, "argv", [script or f"{module.__name__}.py", *argv])
    try:
        module.main()
    except (cli.UserError, InputError, CheckpointError) as error:
        message = cli.user_message(error)
        assert "\n" not in message and message.endswith((".", ")")), message
        return "user error"
    except SystemExit as exit_:
        assert exit_.code in (0, 2), exit_.code
        return "argparse"
    return "ran"
