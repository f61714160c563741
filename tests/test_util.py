"""src/util.py: MNIST as the exercise loads it, the FFHQ/StyleGAN folder checks and split, and the image
reader. The MNIST files' reader and fetchers (iml/mnist_data.py) are tested in tests/iml/test_mnist_data.py,
the PNG check (iml/image_files.py) in tests/iml/test_image_files.py, the data commands (`python -m iml ...`)
in tests/iml/test_data_cli.py; memory bombs among the MNIST files are refused in test_hardening_reading.py."""

import os
import re
import zlib

import numpy as np
import pytest
import torch
from conftest import (
    png_bytes,
    raises_explained,
    write_png,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import util
from iml import cli, image_files
from iml.common import InputError
from iml.image_files import fake_name, natural_key, real_name
from iml.mnist_data import MNIST_TEST_LABEL_COUNTS, write_mnist_raw

# ------------------------------------------------------------------ MNIST


def test_idx_files_written_in_torchvisions_layout_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60_000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=60_000, dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=10_000, dtype=np.uint8)
    write_mnist_raw(tmp_path, "train", images, labels)
    write_mnist_raw(tmp_path, "test", test_images, test_labels)
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


def test_real_mnist_has_the_known_counts_and_histogram(mnist_train, mnist_test):
    train_images, train_labels = mnist_train
    test_images, test_labels = mnist_test
    assert train_images.shape == (60_000, 28, 28) and train_images.dtype == torch.uint8
    assert test_images.shape == (10_000, 28, 28) and test_images.dtype == torch.uint8
    assert tuple(torch.bincount(test_labels, minlength=10).tolist()) == MNIST_TEST_LABEL_COUNTS
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


# ------------------------------------------------------------------ FFHQ/StyleGAN folders


# The cli.ADVICE entries these hints need; where cli.py already has one, its own is used.
NEW_ADVICE = {
    "ffhq-empty": "{message}; put 128x128 RGB PNG images into it, pass another --data, or make a folder from any "
    "face pictures with `python -m iml ffhq-import`.",
    "ffhq-empty-standin": "{message}; write it again with `python -m iml ffhq-standin --out <that folder> --force`.",
    "ffhq-empty-import": "{message}; import it again with "
    "`python -m iml ffhq-import --real DIR --fake DIR --out <that folder> --force`.",
    "split-sizes": "{message}; ask for fewer with --train-size, --val-size and --test-size, or use a folder with more images.",
}


@pytest.fixture
def advice(monkeypatch):
    for hint, template in NEW_ADVICE.items():
        monkeypatch.setitem(cli.ADVICE, hint, cli.ADVICE.get(hint, template))


def test_load_folder_sorts_naturally_splits_disjointly_and_checks_sizes(tmp_path, advice):
    fakes = tmp_path / "B_stylegan"
    for i in reversed(range(12)):
        write_png(fakes / fake_name(i), seed=i)
    (fakes / ".DS_Store").write_bytes(b"\0")
    train, val, test = util.load_folder(fakes, 8, 2, 2)
    # natural order: example2 before example10 (plain string order would put example10 third)
    assert [p.name for p in train] == [fake_name(i) for i in range(8)]
    assert [p.name for p in val] == [fake_name(8), fake_name(9)]
    assert [p.name for p in test] == [fake_name(10), fake_name(11)]
    train, val, test = util.load_folder(str(fakes), 3, 0, 4)
    assert (len(train), len(val), len(test)) == (3, 0, 4)
    assert not set(train) & set(test) and test[0].name == fake_name(3)
    assert natural_key("00010.png") > natural_key("00009.png")

    with raises_explained(
        r"holds 12 usable images, fewer than the 13 asked for \(train 10 \+ validation 2 \+ test 1\); "
        r"ask for fewer with --train-size, --val-size and --test-size, or use a folder with more images\.$"
    ) as info:
        util.load_folder(fakes, 10, 2, 1)
    assert info.value.hint == "split-sizes" and str(info.value).endswith(")")  # the facts alone end cleanly
    with raises_explained(r"A_ffhq does not exist; run `python -m iml ffhq-download` to fetch"):
        util.load_folder(tmp_path / "A_ffhq", 1, 1, 1)
    (tmp_path / "empty").mkdir()
    with raises_explained("empty holds no image files"):
        util.load_folder(tmp_path / "empty", 1, 1, 1)


def test_load_folder_takes_numpy_integer_sizes_and_refuses_bool_float_and_negative_ones(tmp_path):
    folder = tmp_path / "A_ffhq"
    for i in range(4):
        write_png(folder / real_name(i), seed=i)
    train, val, test = util.load_folder(folder, np.int64(2), np.int32(1), np.uint8(1))
    assert (len(train), len(val), len(test)) == (2, 1, 1)
    needed = "load_folder needs val_size as a whole number from 0 up (an int), got "
    for value, error, got in (
        (True, TypeError, "the bool True"),
        (np.bool_(True), TypeError, "the bool True"),
        (2.0, TypeError, "the float 2.0"),
        (np.float64(2.0), TypeError, "the float64 2.0"),
        ("2", TypeError, "the string '2'"),
        (None, TypeError, "None"),
        (-1, ValueError, "-1"),
        (np.int64(-1), ValueError, "-1"),
    ):
        with pytest.raises(error, match=f"^{re.escape(needed + got)}$"):
            util.load_folder(folder, 1, value, 1)
    with raises_explained(r"holds 4 usable images, fewer than the 300 asked for \(train 200 \+ validation 100"):
        util.load_folder(folder, np.uint8(200), np.uint8(100), 0)  # added as numpy's uint8, 300 would wrap to 44


def odd_image_folder(path, kind):
    """Put at `path` something that is not a readable folder; returns the words that name it."""
    if kind == "file":
        path.write_bytes(png_bytes())
        return "is a file, not a folder; an image folder must be a readable folder of PNG files: remove it"
    if kind == "link loop":
        path.symlink_to(path)
        return "cannot be reached (Too many levels of symbolic links); an image folder must be"
    if kind == "dangling link":
        path.symlink_to(path.with_name("gone"))
        return "is a link to nothing (its target does not exist); an image folder must be"
    path.mkdir()
    path.chmod(0)
    return "is not readable (permission denied); an image folder must be a readable folder of PNG files: make it"


@pytest.mark.parametrize("kind", ["file", "link loop", "dangling link", "unreadable"])
def test_load_folder_names_what_is_there_instead_of_a_folder(tmp_path, kind, monkeypatch):
    if kind == "unreadable" and os.geteuid() == 0:  # root reads a folder of mode 000: deny it as a user's access would
        monkeypatch.setattr(image_files.os, "access", lambda path, mode: False)
    folder = tmp_path / "A_ffhq"
    words = odd_image_folder(folder, kind)
    with raises_explained(rf"^{re.escape(str(folder))} {re.escape(words)}") as info:
        util.load_folder(folder, 1, 0, 0)
    assert "does not exist;" not in cli.user_message(info.value) and "ffhq-download" not in cli.user_message(info.value)


# (hint, the line after the facts) of an empty folder, by the dataset it belongs to
EMPTY_ADVICE = {
    "download": ("ffhq-download", "delete {data}/ffhq_style_gan and run `python -m iml ffhq-download` again."),
    "stand-in": (
        "ffhq-empty-standin",
        "write it again with `python -m iml ffhq-standin --out <that folder> --force`.",
    ),
    "import": (
        "ffhq-empty-import",
        "import it again with `python -m iml ffhq-import --real DIR --fake DIR --out <that folder> --force`.",
    ),
    "any other": (
        "ffhq-empty",
        "put 128x128 RGB PNG images into it, pass another --data, or make a folder from any face pictures with "
        "`python -m iml ffhq-import`.",
    ),
}


@pytest.mark.parametrize("origin", list(EMPTY_ADVICE))
@pytest.mark.parametrize("kind", [util.REAL_FOLDER, util.FAKE_FOLDER])
def test_an_empty_folder_names_only_itself_and_the_command_that_recreates_its_dataset(
    tmp_path, monkeypatch, advice, origin, kind
):
    data = tmp_path / "data"  # like the repository's data/, which also holds the shipped weights and MNIST
    monkeypatch.setattr(util, "FFHQ_DIR", data / "ffhq_style_gan")
    monkeypatch.setattr(util, "FFHQ_SOURCE_DIR", data / "ffhq_style_gan" / "source_data")
    source, facts = {
        "download": (util.FFHQ_SOURCE_DIR, f", so the download in {data}/ffhq_style_gan is incomplete; "),
        "stand-in": (data / "ffhq_standin", f" ({data}/ffhq_standin is a synthetic stand-in); "),
        "import": (data / "faces", f" ({data}/faces was imported from other pictures: it holds MANIFEST.csv); "),
        "any other": (tmp_path / "faces" / "set", "; "),  # --data faces/set: faces/ is not at fault
    }[origin]
    (source / kind).mkdir(parents=True)
    if origin == "stand-in":
        (source / util.STANDIN_MARKER).write_text("STAND-IN DATA")
    if origin == "import":
        (source / "MANIFEST.csv").write_text("file,class\n")
    hint, advice_line = EMPTY_ADVICE[origin]
    with pytest.raises(InputError) as info:
        util.load_folder(source / kind, 1, 0, 0)
    assert info.value.hint == hint
    line = cli.user_message(info.value)
    assert line == f"{source / kind} holds no image files{facts}{advice_line.format(data=data)}"
    # without cli.py's advice the facts ask to delete nothing, or only the download's own folder
    assert "delete" not in str(info.value) or str(info.value).endswith(f"; delete {data}/ffhq_style_gan")


def bad_file(folder, kind):
    """Write one file that is not a 128x128 8-bit RGB PNG; return (name, reason in the error)."""
    if kind == "grayscale":
        write_png(folder / "gray.png", mode="L")
        return "gray.png", "grayscale instead of RGB"
    if kind == "rgba":
        write_png(folder / "alpha.png", mode="RGBA")
        return "alpha.png", "RGBA instead of RGB"
    if kind == "small":
        write_png(folder / "small.png", size=64)
        return "small.png", "64x64 instead of 128x128"
    if kind == "16-bit":
        raw = bytearray(write_png(folder / "deep.png").read_bytes())
        raw[24] = 16  # the IHDR bit depth, with its checksum updated to match
        raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
        (folder / "deep.png").write_bytes(bytes(raw))
        return "deep.png", "16-bit instead of 8-bit"
    if kind == "text":
        (folder / "notes.txt").write_text("not an image")
        return "notes.txt", "not a PNG file"
    if kind == "jpeg":
        Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(folder / "photo.png", format="jpeg")
        return "photo.png", "not a PNG file"
    if kind == "empty":
        (folder / "empty.png").write_bytes(b"")
        return "empty.png", "empty file"
    raw = bytearray(write_png(folder / "broken.png", seed=7).read_bytes())
    if kind == "corrupt header":
        raw[18] ^= 0x01  # the width, so the IHDR checksum no longer matches
        (folder / "broken.png").write_bytes(bytes(raw))
        return "broken.png", "corrupt PNG header"
    (folder / "broken.png").write_bytes(bytes(raw[:-100]))
    return "broken.png", "truncated PNG"


@pytest.mark.parametrize(
    "kind", ["grayscale", "rgba", "small", "16-bit", "text", "jpeg", "empty", "corrupt header", "truncated"]
)
def test_load_folder_names_files_that_are_not_128_rgb_png_or_skips_them(tmp_path, kind, capsys):
    folder = tmp_path / "A_ffhq"
    for i in range(3):
        write_png(folder / real_name(i), seed=i)
    name, reason = bad_file(folder, kind)
    pattern = rf"^1 of 4 files in .*A_ffhq are not 128x128 RGB PNG images: {name} \({reason}\); replace or delete them, or pass skip_unreadable=True"
    with pytest.raises(InputError, match=pattern) as info:
        util.load_folder(folder, 1, 1, 1)
    # on the command line the same sentence names the flag instead
    assert cli.user_message(info.value).endswith(
        "or pass skip_unreadable=True (--skip-unreadable on the command line) to leave them out."
    )
    train, val, test = util.load_folder(folder, 1, 1, 1, skip_unreadable=True)
    assert [p.name for p in train + val + test] == ["00000.png", "00001.png", "00002.png"]
    assert "warning: skipped 1 of 4 files in" in capsys.readouterr().err


def test_load_folder_lists_many_bad_files_briefly(tmp_path):
    folder = tmp_path / "A_ffhq"
    for i in range(8):
        write_png(folder / real_name(i), size=32, seed=i)
    with pytest.raises(
        InputError,
        match=r"8 of 8 files .*: 00000.png \(32x32 instead of 128x128\), .*00004.png \(32x32 instead of 128x128\) and 3 more;",
    ):
        util.load_folder(folder, 1, 0, 0)


GOOD_PNG = png_bytes()
FILE_CONTENTS = st.one_of(
    st.just(GOOD_PNG),
    st.just(png_bytes(mode="RGBA")),
    st.just(png_bytes(mode="L")),
    st.just(png_bytes(size=(64, 128))),
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
def test_fuzz_load_folder_gives_disjoint_splits_or_one_input_error(tmp_path_factory, files, sizes, skip):
    """Any folder gives disjoint, sorted splits of the asked sizes or one InputError, never another exception."""
    folder = tmp_path_factory.mktemp("A_ffhq")
    for name, content in files.items():
        (folder / name).write_bytes(content)
    try:
        train, val, test = util.load_folder(folder, *sizes, skip_unreadable=skip)
    except InputError as error:
        assert "\n" not in cli.user_message(error)
    else:
        assert (len(train), len(val), len(test)) == sizes
        chosen = [*train, *val, *test]
        assert len(set(chosen)) == len(chosen)
        assert all(path.parent == folder for path in chosen)


def test_read_rgb_names_an_image_of_the_wrong_size_or_an_unreadable_file(tmp_path):
    path = write_png(tmp_path / "small.png", size=64)
    np.testing.assert_array_equal(util.read_rgb(path), np.asarray(Image.open(path)))  # any size without `size`
    with pytest.raises(InputError, match=r"small.png is 64x64 pixels, not 128x128"):
        util.read_rgb(path, util.IMAGE_SIZE)
    path.write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"small.png is not a readable image"):
        util.read_rgb(path, util.IMAGE_SIZE)


# ------------------------------------------------------------------ streamed statistics (Task 3)


def test_welford_equals_numpy_mean_and_std():
    rng = np.random.default_rng(4)
    # a large offset and small spread: the naive sum-of-squares formula would lose most digits here
    data = 1e4 + rng.standard_normal((257, 3, 5, 4)) * rng.uniform(0.01, 10, (3, 5, 4))
    estimator = util.WelfordEstimator()
    for part in np.split(data, [1, 2, 50, 51, 200]):  # uneven batches, including single samples
        estimator.update(torch.from_numpy(part))
    mean, std = estimator.finalize()
    assert estimator.count == 257 and mean.shape == (3, 5, 4)
    np.testing.assert_allclose(mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), data.std(axis=0), rtol=1e-9)
    # float32 batches, like the spectra: the batch statistics in float32, the running ones in float64
    spectra = (8 + 2 * rng.standard_normal((300, 3, 6, 6))).astype(np.float32)
    estimator = util.WelfordEstimator()
    for part in np.split(spectra, [100, 237]):
        estimator.update(torch.from_numpy(part))
    mean, std = estimator.finalize()
    np.testing.assert_allclose(mean.numpy(), spectra.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), spectra.astype(np.float64).std(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="no data"):
        util.WelfordEstimator().finalize()


def test_welford_empty_batch_before_any_data_changes_nothing():
    estimator = util.WelfordEstimator()
    estimator.update(torch.empty(0, 3, 4, dtype=torch.float32))
    assert estimator.count == 0
    with pytest.raises(ValueError, match="no data"):
        estimator.finalize()
    data = 5 + np.random.default_rng(5).standard_normal((7, 3, 4))
    estimator.update(torch.from_numpy(data))
    mean, std = estimator.finalize()
    assert estimator.count == 7
    np.testing.assert_allclose(mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), data.std(axis=0), rtol=1e-9)


def test_welford_empty_batch_after_data_changes_nothing():
    data = torch.from_numpy(np.random.default_rng(6).standard_normal((9, 2, 5)))
    estimator = util.WelfordEstimator()
    estimator.update(data)
    before = [t.clone() for t in estimator.finalize()]
    estimator.update(data[:0])
    mean, std = estimator.finalize()
    assert estimator.count == 9
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()
    assert torch.equal(mean, before[0]) and torch.equal(std, before[1])


def test_read_rgb_refuses_a_file_larger_than_an_exercise_image_before_reading_it(tmp_path):
    path = tmp_path / "00000.png"
    with open(path, "wb") as file:
        file.truncate(5 * 2**20)  # sparse: no disk space
    with raises_explained(
        rf"^{re.escape(str(path))} is 5.0 MiB, more than the 4.0 MiB that an exercise image takes; "
        r"delete or replace it and run again\.$"
    ):
        util.read_rgb(path, util.IMAGE_SIZE)
