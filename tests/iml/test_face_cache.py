"""src/iml/face_cache.py: the face folders of Task 3 decoded once into a uint8 cache, exactly and
independently of the number of workers, split as the exercise splits them."""

import numpy as np
import pytest
import torch
from conftest import raises_explained, random_images, save_pngs

import util
from iml import cli
from iml.common import InputError
from iml.face_cache import check_data_folder, decode_chunk, decode_images, load_splits, place_cache
from iml.image_files import png_problem
from iml.standin import make_standin

PER_CLASS = 12


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A tiny stand-in dataset: PER_CLASS synthetic 'real' and 'fake' 128x128 PNGs."""
    return make_standin(tmp_path_factory.mktemp("ffhq") / "standin", per_class=PER_CLASS, seed=0, workers=1)


# ------------------------------------------------------------------ decoding


def test_decoding_is_exact_and_independent_of_workers(tmp_path):
    arrays = random_images((9, 128, 128, 3), seed=6)
    files = save_pngs(tmp_path, arrays)
    one = decode_images(files, workers=1)
    assert one.dtype == torch.uint8 and one.shape == (9, 128, 128, 3)
    np.testing.assert_array_equal(one.numpy(), arrays)
    assert torch.equal(decode_images(files, workers=3), one)
    np.testing.assert_array_equal(decode_chunk(files[2:5]), arrays[2:5])


def test_many_chunks_come_back_in_order(tmp_path):
    # 40 files in chunks of 16 on two workers: the third chunk is short, and each lands in its place
    arrays = random_images((40, 128, 128, 3), seed=8)
    files = save_pngs(tmp_path, arrays)
    np.testing.assert_array_equal(decode_images(files, workers=2).numpy(), arrays)


def test_a_damaged_image_fails_the_run_with_its_name(tmp_path):
    # header and end marker intact, compressed pixels destroyed: load_folder's check (Pillow's verify) finds the
    # chunk's checksum wrong, and decoding without that check fails by name
    arrays = random_images((40, 128, 128, 3), seed=7)
    files = save_pngs(tmp_path, arrays)
    data = bytearray(files[33].read_bytes())
    data[200:5000] = bytes(4800)
    files[33].write_bytes(bytes(data))
    assert png_problem(files[33]).startswith("corrupt PNG (broken PNG file (bad header checksum in b'IDAT')")
    with pytest.raises(InputError, match=r"33.png is not a readable image"):
        decode_images(files, workers=2)


def test_a_decoded_image_of_the_wrong_size_is_named(tmp_path):
    (path,) = save_pngs(tmp_path, [random_images((64, 64, 3))])
    with pytest.raises(InputError, match=r"00.png is 64x64 pixels, not 128x128"):
        decode_images([path], workers=1)


# ------------------------------------------------------------------ the splits


def test_splits_are_reals_then_fakes_and_slices_of_one_cache(standin):
    splits = load_splits(standin, 6, 2, 4, workers=2)
    assert list(splits) == ["train", "val", "test"]
    for name, per_class in (("train", 6), ("val", 2), ("test", 4)):
        images, labels = splits[name]
        assert images.dtype == torch.uint8 and images.shape == (2 * per_class, 128, 128, 3)
        assert labels.dtype == torch.int64 and labels.tolist() == [0] * per_class + [1] * per_class
    # slices, not copies: all three share the storage of one cache
    pointers = {x.untyped_storage().data_ptr() for x, _ in splits.values()}
    assert len(pointers) == 1
    # and the pixels are those of the files util.load_folder assigns to each split
    real, fake = (util.load_folder(standin / f, 6, 2, 4) for f in (util.REAL_FOLDER, util.FAKE_FOLDER))
    np.testing.assert_array_equal(splits["test"][0][0].numpy(), util.read_rgb(real[2][0], 128))
    np.testing.assert_array_equal(splits["val"][0][-1].numpy(), util.read_rgb(fake[1][-1], 128))


def test_sizes_larger_than_the_folder_are_refused(standin):
    with raises_explained(rf"holds {PER_CLASS} usable images, fewer than the 20 asked for"):
        load_splits(standin, 10, 5, 5, workers=1)


def test_missing_default_data_names_both_commands(tmp_path):
    with pytest.raises(InputError) as error:
        check_data_folder(tmp_path / "nothing")
    assert "python -m iml ffhq-download" in cli.user_message(error.value)
    assert "python -m iml ffhq-standin" in cli.user_message(error.value)
    (tmp_path / "half" / util.REAL_FOLDER).mkdir(parents=True)
    with raises_explained(r"has no B_stylegan/ folder"):
        check_data_folder(tmp_path / "half")
    (tmp_path / "half" / util.FAKE_FOLDER).mkdir()
    check_data_folder(tmp_path / "half")  # both folders: accepted (their files are checked later)


def test_a_data_folder_or_class_folder_that_is_a_file_is_named_as_one(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with raises_explained(r"the image folder .*file is a file, not a folder; run `python -m iml ffhq-download`"):
        check_data_folder(tmp_path / "file")
    (tmp_path / "data" / util.REAL_FOLDER).mkdir(parents=True)
    (tmp_path / "data" / util.FAKE_FOLDER).symlink_to(tmp_path / "data" / util.FAKE_FOLDER)
    with raises_explained(r"B_stylegan cannot be reached \(Too many levels of symbolic links\); an image folder must"):
        check_data_folder(tmp_path / "data")


def test_the_cache_stays_on_the_cpu_without_a_gpu():
    images = torch.zeros(2, 128, 128, 3, dtype=torch.uint8)
    assert place_cache(images, torch.device("cpu")) is images


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cache_moves_to_the_gpu_when_it_fits():
    images = torch.zeros(2, 128, 128, 3, dtype=torch.uint8)
    placed = place_cache(images, torch.device("cuda"))
    assert placed.device.type == "cuda" and torch.equal(placed.cpu(), images)
