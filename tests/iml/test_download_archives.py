"""src/iml/download.py: archives zipfile cannot read (encryption, Deflate64 and other methods), Windows
backslash paths and unexpected top-level folders: each refused or handled before anything is
written, with a message that names the member or the layout found and no folder that is gone."""

import os
import re
import shutil
import struct
import subprocess
import zipfile

import pytest
from conftest import png_bytes, raises_explained
from test_download import dataset_zip, make_zip, tree, verify3

from iml import common, download
from iml.image_files import fake_name, real_name

ADVICE = r"or delete .*ffhq_style_gan\.zip and run `python -m iml ffhq-download` again\.$"
WHERE = r"so that .*ffhq_style_gan holds source_data/A_ffhq/ and source_data/B_stylegan/, "


@pytest.fixture(autouse=True)
def plenty_of_space(monkeypatch):
    monkeypatch.setattr(common, "free_disk_bytes", lambda path: 10**12)


def patch_headers(path, flag_bits=0, method=None):
    """Set flag bits and/or the compression method in every local and central header of a zip
    whose members hold ASCII text only (so the signatures occur in the headers alone)."""
    raw = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        for match in re.finditer(re.escape(signature), bytes(raw)):
            at = match.start() + flags_at
            flags, old_method = struct.unpack_from("<HH", raw, at)
            struct.pack_into("<HH", raw, at, flags | flag_bits, old_method if method is None else method)
    path.write_bytes(bytes(raw))
    return path


def text_zip(path, top="ffhq_style_gan"):
    """A stored zip of three text members laid out like the dataset."""
    names = [f"{top}/source_data/A_ffhq/00000.png", f"{top}/source_data/B_stylegan/style_gan_ffhq_example0.png"]
    return make_zip(path, [(f"{top}/README.txt", b"readme"), *((name, b"not really a png") for name in names)])


@pytest.mark.parametrize(
    ("flag_bits", "method", "found", "tool"),
    [
        (0x1, None, "is encrypted", "with its password"),
        (0, 9, r"is compressed with Deflate64 \(method 9\), which Python's zipfile cannot read", "with 7-Zip"),
        (0, 93, r"is compressed with Zstandard \(method 93\)", "with 7-Zip"),
        (0, 77, r"is compressed with an unknown method \(method 77\)", "with 7-Zip"),
    ],
)
def test_an_encrypted_or_unreadable_archive_is_named_before_anything_is_written(
    tmp_path, flag_bits, method, found, tool
):
    data = tmp_path / "data"
    data.mkdir()
    patch_headers(text_zip(data / "ffhq_style_gan.zip"), flag_bits, method)
    before = tree(tmp_path)
    with raises_explained(
        rf"ffhq_style_gan\.zip was not extracted: member 'ffhq_style_gan/README\.txt' \(and 2 more\) {found}.*; "
        rf"unpack it yourself {tool}.* {WHERE}{ADVICE}"
    ):
        download.download_ffhq(data, verify3, downloader=None)
    assert tree(tmp_path) == before  # no partial folder, no lock file, no dataset folder


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip command")
def test_an_archive_encrypted_by_the_zip_command_is_named(tmp_path):
    source = tmp_path / "ffhq_style_gan" / "source_data" / "A_ffhq"
    source.mkdir(parents=True)
    (source / "00000.png").write_bytes(png_bytes())
    zip_path = tmp_path / "locked.zip"
    subprocess.run(["zip", "-q", "-r", "-P", "secret", str(zip_path), "ffhq_style_gan"], cwd=tmp_path, check=True)
    with raises_explained(
        r"locked\.zip was not extracted: member 'ffhq_style_gan/source_data/A_ffhq/00000\.png' is encrypted;"
    ):
        download.extract_zip(zip_path, tmp_path / "data" / "ffhq_style_gan")
    assert not (tmp_path / "data").exists()


def test_backslash_paths_are_folders_as_on_windows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    members = [("source_data\\", b""), ("source_data\\A_ffhq\\", b"")]
    for i in range(3):
        members.append((f"source_data\\A_ffhq\\{real_name(i)}", png_bytes(seed=i)))
        members.append((f"source_data\\B_stylegan\\{fake_name(i)}", png_bytes(seed=10 + i)))
    make_zip(data / "ffhq_style_gan.zip", members)
    source = download.download_ffhq(data, verify3, downloader=None)
    assert sorted(os.listdir(source)) == ["A_ffhq", "B_stylegan"]
    assert (source / "A_ffhq" / real_name(2)).read_bytes() == png_bytes(seed=2)
    assert sorted(os.listdir(data)) == ["ffhq_style_gan", "ffhq_style_gan.zip"]


@pytest.mark.parametrize("top", ["ffhq_style_gan", "ffhq_style_gan (1)", "FFHQ-copy"])
def test_any_one_top_level_folder_around_source_data_is_dropped(tmp_path, top):
    data = tmp_path / "data"
    data.mkdir()
    dataset_zip(data / "ffhq_style_gan.zip", per_folder=3, top=top)
    source = download.download_ffhq(data, verify3, downloader=None)
    assert source == data / "ffhq_style_gan" / "source_data"
    assert sorted(os.listdir(data / "ffhq_style_gan")) == ["README.txt", "source_data"]
    download.verify_ffhq(source, per_folder=3)


@pytest.mark.parametrize(
    ("members", "found"),
    [
        (["images/real/1.png", "images/fake/2.png"], r"it holds only 'images/', which holds 'fake/', 'real/'"),
        (["A_ffhq/1.png", "B_stylegan/2.png", "notes.txt"], r"it holds 'A_ffhq/', 'B_stylegan/', 'notes\.txt'"),
        (["source_data/A_ffhq/1.png"], r"it holds only 'source_data/', which holds 'A_ffhq/'"),
        ([], "it is empty"),
    ],
)
def test_an_unexpected_layout_is_described_before_anything_is_written(tmp_path, members, found):
    data = tmp_path / "data"
    data.mkdir()
    make_zip(data / "ffhq_style_gan.zip", [(name, b"x") for name in members])
    before = tree(tmp_path)
    with raises_explained(
        rf"ffhq_style_gan\.zip does not hold source_data/A_ffhq and source_data/B_stylegan \({found}\), "
        rf"so nothing was extracted; unpack it yourself {WHERE}{ADVICE}"
    ) as info:
        download.download_ffhq(data, verify3, downloader=None)
    assert tree(tmp_path) == before
    assert "partial" not in str(info.value)


def test_a_failed_check_names_the_archive_not_the_deleted_hidden_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    members = [(f"source_data/A_ffhq/{real_name(i)}", png_bytes(seed=i)) for i in range(3)]
    members += [("source_data/B_stylegan/notes.txt", b"not an image")]
    make_zip(data / "ffhq_style_gan.zip", members)
    with raises_explained(
        r"^ffhq_style_gan\.zip does not hold the expected dataset \(1 of 1 files in source_data/B_stylegan are not "
        r"128x128 RGB PNG images: notes\.txt \(.*\)\); nothing was kept, delete .*data/ffhq_style_gan\.zip and run"
    ) as info:
        download.download_ffhq(data, verify3, downloader=None)
    assert ".partial" not in str(info.value) and "skip_unreadable" not in str(info.value)
    assert sorted(os.listdir(data)) == ["ffhq_style_gan.zip"]


def test_zip_member_unreadable_reads_flag_bits_and_methods():
    info = zipfile.ZipInfo("a.png")
    assert download.zip_member_unreadable(info) is None
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        info.compress_type = method
        assert download.zip_member_unreadable(info) is None
    info.flag_bits = 0x41  # strong encryption sets bit 6 beside bit 0
    assert download.zip_member_unreadable(info) == "is encrypted"
    info.flag_bits, info.compress_type = 0, 98
    assert "(method 98)" in download.zip_member_unreadable(info)
