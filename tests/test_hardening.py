"""Bad input gets one clear sentence and a non-zero exit; nothing is lost; nothing untrusted runs.

Each test here is a row of the README's "When something goes wrong" table.
"""

import gzip
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import util
from models import load_cnn

SRC = util.ROOT / "src"


def run_script(script, *args, timeout=300):
    """Run one of the project's scripts as a user would; returns the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, str(SRC / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
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


class RunsCommand:
    """Pickles to `os.system(command)`: loading it with plain pickle runs the command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def weights_copy(tmp_path):
    path = tmp_path / "weights.pth"
    shutil.copyfile(util.WEIGHTS_PATH, path)
    return path


# ------------------------------------------------------------------ weights


def test_truncated_weights(weights_copy):
    weights_copy.write_bytes(weights_copy.read_bytes()[:50_000])
    result = run_script("mnist_integrated.py", "--train-only", "--weights", weights_copy)
    assert_clear_error(result, "is truncated or not a PyTorch checkpoint", "--retrain")


def test_weights_of_another_architecture(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": torch.nn.Linear(784, 10).state_dict()}, path)
    result = run_script("mnist_integrated.py", "--train-only", "--weights", path)
    assert_clear_error(result, "belongs to another network, not this CNN", "--retrain")


def test_weights_that_would_run_a_command_are_refused(tmp_path):
    marker = tmp_path / "command-ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": RunsCommand(f"touch {marker}")}, path)
    result = run_script("mnist_integrated.py", "--train-only", "--weights", path)
    assert_clear_error(result, "refused by the safe loader because it would run code")
    assert not marker.exists()
    # the file is a real exploit: unsafe loading would have run the command
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_existing_weights_are_kept_without_retrain(weights_copy):
    before = weights_copy.read_bytes()
    result = run_script("mnist_integrated.py", "--train-only", "--weights", weights_copy)
    assert result.returncode == 0, result.stderr
    assert "test accuracy 99." in result.stdout
    assert weights_copy.read_bytes() == before


def test_killed_training_leaves_previous_weights_intact(weights_copy):
    before = weights_copy.read_bytes()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-u", str(SRC / "mnist_integrated.py"), "--retrain", "--train-only"]
    command += ["--weights", str(weights_copy), "--epochs", "50", "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert "training on" in process.stdout.readline()
        time.sleep(3)  # well inside the first of 50 epochs
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert weights_copy.read_bytes() == before
    assert sorted(p.name for p in weights_copy.parent.iterdir()) == ["weights.pth"]
    load_cnn(weights_copy)


def test_nan_during_training_stops_and_writes_no_weights(tmp_path, monkeypatch):
    import mnist_integrated
    from models import CNN

    class BlowsUp(CNN):
        calls = 0

        def forward(self, x):
            BlowsUp.calls += 1
            out = super().forward(x)
            return out * float("nan") if BlowsUp.calls > 5 else out

    monkeypatch.setattr(mnist_integrated, "CNN", BlowsUp)
    weights = tmp_path / "weights.pth"
    args = mnist_integrated.build_parser().parse_args(
        ["--retrain", "--train-size", "2000", "--val-size", "0", "--epochs", "1", "--weights", str(weights)]
    )
    with pytest.raises(util.UserError, match=r"training diverged: the loss became nan in epoch 1, batch 5; lower --lr"):
        mnist_integrated.get_model(args, torch.device("cpu"))
    assert not weights.exists() and not any(tmp_path.iterdir())


def test_nan_during_input_optimisation_stops_and_keeps_old_figures(tmp_path):
    old = tmp_path / "input_opt_grid.png"
    old.write_bytes(b"previous figure")
    result = run_script("input_opt.py", "--lr", "1e38", "--out", tmp_path)
    assert_clear_error(result, "the objective became NaN or Inf; lower --lr (now 1e+38) and run again.")
    assert old.read_bytes() == b"previous figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input_opt_grid.png"]


def test_missing_weights_for_input_optimisation(tmp_path):
    result = run_script("input_opt.py", "--weights", tmp_path / "nothing.pth", "--out", tmp_path)
    assert_clear_error(result, "nothing.pth does not exist; recreate it with `python src/mnist_integrated.py --retrain")


# ------------------------------------------------------------------ MNIST files


def test_partial_mnist_download_is_fetched_again(tmp_path, mnist_test, mnist_train):
    raw = tmp_path / "raw"
    util.write_mnist_raw(raw, "train", mnist_train[0].numpy(), mnist_train[1].numpy())
    util.write_mnist_raw(raw, "test", mnist_test[0].numpy(), mnist_test[1].numpy())
    good = (raw / "t10k-images-idx3-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(good[: len(good) // 3])  # an interrupted download

    def refetch(raw_dir):
        (raw_dir / "t10k-images-idx3-ubyte").write_bytes(good)

    util.ensure_mnist(raw, sources=[("a working mirror", refetch)])
    assert (raw / "t10k-images-idx3-ubyte").read_bytes() == good


def test_partial_mnist_download_without_sources_names_the_file(tmp_path, mnist_test):
    raw = tmp_path / "raw"
    images, labels = mnist_test[0].numpy(), mnist_test[1].numpy()
    util.write_mnist_raw(raw, "train", np.zeros((60_000, 28, 28), np.uint8), np.zeros(60_000, np.uint8))
    util.write_mnist_raw(raw, "test", images, labels)
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(util.UserError) as info:
        util.ensure_mnist(raw, sources=[])
    assert "t10k-labels-idx1-ubyte has 4992 data bytes, not 10000" in str(info.value)
    assert "by hand" in str(info.value)


def test_gzipped_raw_file_that_is_corrupt(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(util.UserError, match=r"is not a valid gzip file"):
        util.read_idx(path, util.IDX_LABELS_MAGIC, (10_000,))


def test_tampered_package_pickle_is_refused(tmp_path):
    marker = tmp_path / "command-ran"
    payload = pickle.dumps(((RunsCommand(f"touch {marker}"), None), None, None), protocol=2)
    with pytest.raises(util.UserError, match=r"was refused: refusing to load global (posix|os)\.system"):
        util.parse_mnist_pickle(payload)
    assert not marker.exists()


def test_tampered_package_with_wrong_counts():
    arrays = tuple((np.zeros((n, 784), np.float32), np.zeros(n, np.int64)) for n in (50_000, 10_000, 10_000))
    # protocol 4 stores raw bytes without helper globals: numpy's own are all the file names
    payload = pickle.dumps(arrays, protocol=4)
    with pytest.raises(
        util.UserError, match=r"has test label counts \(10000, 0, 0, 0, 0, 0, 0, 0, 0, 0\), not MNIST's"
    ):
        util.parse_mnist_pickle(payload)


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["--epochs", "-2"], "argument --epochs: must be a positive integer, got -2"),
        (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
        (["--val-size", "-1"], "argument --val-size: must be zero or a positive integer, got -1"),
        (["--lr", "0"], "argument --lr: must be a positive number no larger than 1, got 0"),
        (["--lr", "1e38"], "argument --lr: must be a positive number no larger than 1, got 1e38"),
    ],
)
def test_training_arguments(args, message):
    result = run_script("mnist_integrated.py", "--train-only", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_device():
    result = run_script("mnist_integrated.py", "--train-only", "--device", "tpu")
    assert_clear_error(result, "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps.")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_where_there_is_none():
    result = run_script("mnist_integrated.py", "--train-only", "--device", "cuda")
    assert_clear_error(
        result, "--device cuda was asked for but this machine has no CUDA GPU; use --device cpu or auto."
    )


def test_validation_split_larger_than_the_training_set(tmp_path):
    result = run_script("mnist_integrated.py", "--retrain", "--val-size", "60000", "--weights", tmp_path / "w.pth")
    assert_clear_error(result, "--val-size 60000 leaves no training digits")
    assert not (tmp_path / "w.pth").exists()


# ------------------------------------------------------------------ fuzzing

IDX_HEADERS = st.sampled_from(
    [
        b"",
        (2051).to_bytes(4, "big") + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2,
        (2049).to_bytes(4, "big") + (2).to_bytes(4, "big"),
        (2051).to_bytes(4, "big"),
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=IDX_HEADERS, body=st.binary(max_size=2000), gz=st.booleans(), images=st.booleans())
def test_fuzz_mnist_raw_reader(tmp_path, header, body, gz, images):
    """Any bytes give either a valid array of the asked shape or a UserError, never another exception."""
    data = header + body
    path = tmp_path / ("file.gz" if gz else "file")
    path.write_bytes(gzip.compress(data) if gz and body[:1] != b"\x00" else data)
    magic, shape = (util.IDX_IMAGES_MAGIC, (2, 28, 28)) if images else (util.IDX_LABELS_MAGIC, (2,))
    try:
        array = util.read_idx(path, magic, shape)
    except util.UserError as error:
        assert str(error).endswith("run again.")
    else:
        assert array.shape == shape and array.dtype == np.uint8


def _png_bytes(size=(128, 128), mode="RGB", seed=0):
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PNG = _png_bytes()
FILE_CONTENTS = st.one_of(
    st.just(GOOD_PNG),
    st.just(_png_bytes(mode="RGBA")),
    st.just(_png_bytes(mode="L")),
    st.just(_png_bytes(size=(64, 128))),
    st.binary(max_size=300),
    st.integers(0, len(GOOD_PNG) - 1).map(lambda n: GOOD_PNG[:n]),
    st.tuples(st.integers(0, len(GOOD_PNG) - 1), st.integers(0, 255)).map(
        lambda p: GOOD_PNG[: p[0]] + bytes([p[1]]) + GOOD_PNG[p[0] + 1 :]
    ),
)
FILE_NAMES = st.from_regex(r"[a-z0-9_]{1,8}\.(png|PNG|jpg|txt)", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(FILE_NAMES, FILE_CONTENTS, max_size=6),
    sizes=st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)),
    skip=st.booleans(),
)
def test_fuzz_load_folder(tmp_path_factory, files, sizes, skip):
    """Any folder gives disjoint, sorted splits of the asked sizes or one UserError, never another exception."""
    folder = tmp_path_factory.mktemp("A_ffhq")
    for name, content in files.items():
        (folder / name).write_bytes(content)
    try:
        train, val, test = util.load_folder(folder, *sizes, skip_unreadable=skip)
    except util.UserError as error:
        assert "\n" not in str(error)
    else:
        assert (len(train), len(val), len(test)) == sizes
        chosen = [*train, *val, *test]
        assert len(set(chosen)) == len(chosen)
        assert all(path.parent == folder for path in chosen)


def test_deepfake_run_names_a_bad_image_or_skips_it(tmp_path, monkeypatch, capsys):
    from PIL import Image

    import deepfake_interpretation

    data = tmp_path / "data"
    util.make_standin(data, per_class=10, seed=0)
    Image.new("L", (128, 128)).save(data / util.REAL_FOLDER / "gray.png")
    argv = ["deepfake_interpretation.py", "--data", str(data), "--out", str(tmp_path / "figures"), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "1", "--representation", "fft"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(util.UserError, match=r"1 of 11 files in .*A_ffhq are not 128x128 RGB PNG images: gray.png"):
        deepfake_interpretation.main()
    assert not (tmp_path / "figures").exists()
    monkeypatch.setattr(sys, "argv", [*argv, "--skip-unreadable"])
    deepfake_interpretation.main()
    assert "warning: skipped 1 of 11 files" in capsys.readouterr().err
    assert list((tmp_path / "figures").glob("deepfake_*.png"))


def test_nan_during_deepfake_training_stops_the_run(tmp_path, monkeypatch):
    import deepfake_interpretation

    data = tmp_path / "data"
    util.make_standin(data, per_class=10, seed=0)
    forward = deepfake_interpretation.LinearDetector.forward
    calls = []

    def blows_up(self, x):
        calls.append(1)
        out = forward(self, x)
        return out * float("nan") if len(calls) > 2 else out

    monkeypatch.setattr(deepfake_interpretation.LinearDetector, "forward", blows_up)
    argv = ["deepfake_interpretation.py", "--data", str(data), "--out", str(tmp_path), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "3", "--batch-size", "4"]
    argv += ["--representation", "fft"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(util.UserError, match=r"^training diverged: the loss became nan; lower --lr and run again\.$"):
        deepfake_interpretation.main()
