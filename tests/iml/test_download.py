"""src/iml/download.py: safe zip extraction and the resumable FFHQ/StyleGAN download (MNIST's fetchers
are tested in test_mnist_data.py)."""

import functools
import http.server
import os
import re
import shutil
import threading
import zipfile

import numpy as np
import pytest
from conftest import png_bytes, raises_explained

import util
from iml import common, download
from iml.image_files import fake_name, real_name

# ------------------------------------------------------------------ zip extraction


def make_zip(path, members):
    """members: (name, bytes) pairs, or (ZipInfo, bytes) for special entries."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def dataset_zip(path, per_folder, top="ffhq_style_gan", padding=0):
    """A zip laid out like ffhq_style_gan.zip with `per_folder` images per class (and `padding` bytes more)."""
    members = [(f"{top}/README.txt", np.random.default_rng(0).bytes(padding))]
    members += [(f"{top}/source_data/{util.REAL_FOLDER}/{real_name(i)}", png_bytes(seed=i)) for i in range(per_folder)]
    members += [
        (f"{top}/source_data/{util.FAKE_FOLDER}/{fake_name(i)}", png_bytes(seed=100 + i)) for i in range(per_folder)
    ]
    return make_zip(path, members)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def symlink_member(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info, target


def verify3(folder):
    """The dataset check for the small test archives: three images per class."""
    download.verify_ffhq(folder, per_folder=3)


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "a '..' component"),
        ("ffhq_style_gan/../../evil.txt", "a '..' component"),
        ("..\\evil.txt", "a '..' component"),
        ("/tmp/evil.txt", "an absolute path"),
        ("C:/evil.txt", "an absolute path"),
        (symlink_member("ffhq_style_gan/link", "/etc/passwd"), "a symbolic link"),
    ],
)
def test_extract_zip_refuses_unsafe_members_and_writes_nothing(tmp_path, member, reason):
    name, data = member if isinstance(member, tuple) else (member, b"owned")
    zip_path = make_zip(tmp_path / "in.zip", [("ffhq_style_gan/ok.txt", b"fine"), (name, data)])
    target = tmp_path / "data" / "ffhq_style_gan"
    before = tree(tmp_path)
    shown = name.filename if isinstance(name, zipfile.ZipInfo) else name
    message = rf"was refused and nothing was extracted: member {re.escape(repr(shown))} has {reason}\.$"
    with raises_explained(message):
        download.extract_zip(zip_path, target)
    assert tree(tmp_path) == before


def test_extract_zip_lays_out_like_unzip(tmp_path):
    data = png_bytes()
    with_top = make_zip(
        tmp_path / "a.zip", [("ffhq_style_gan/source_data/A_ffhq/00000.png", data), ("__MACOSX/._junk", b"x")]
    )
    download.extract_zip(with_top, tmp_path / "one" / "ffhq_style_gan")
    assert tree(tmp_path / "one") == [
        "ffhq_style_gan",
        "ffhq_style_gan/source_data",
        "ffhq_style_gan/source_data/A_ffhq",
        "ffhq_style_gan/source_data/A_ffhq/00000.png",
    ]
    assert (tmp_path / "one/ffhq_style_gan/source_data/A_ffhq/00000.png").read_bytes() == data
    # without the top-level folder the members go inside the target
    without_top = make_zip(tmp_path / "b.zip", [("source_data/A_ffhq/00000.png", data)])
    download.extract_zip(without_top, tmp_path / "two" / "ffhq_style_gan")
    assert (tmp_path / "two/ffhq_style_gan/source_data/A_ffhq/00000.png").read_bytes() == data
    with raises_explained("ffhq_style_gan already exists; delete it to extract b.zip again"):
        download.extract_zip(without_top, tmp_path / "two" / "ffhq_style_gan")


def test_interrupted_extraction_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    zip_path = dataset_zip(tmp_path / "in.zip", per_folder=3)
    data = tmp_path / "data"
    data.mkdir()
    calls = []
    copy = shutil.copyfileobj

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return copy(*args, **kwargs)

    monkeypatch.setattr(download.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.extract_zip(zip_path, data / "ffhq_style_gan")
    assert len(calls) == 4 and os.listdir(data) == []

    # a run killed outright leaves its hidden folder; the next run removes it and succeeds
    stale = data / ".ffhq_style_gan.partial-killed"
    (stale / "source_data").mkdir(parents=True)
    monkeypatch.setattr(download.shutil, "copyfileobj", copy)
    download.extract_zip(zip_path, data / "ffhq_style_gan")
    assert os.listdir(data) == ["ffhq_style_gan"]
    download.verify_ffhq(data / "ffhq_style_gan" / "source_data", per_folder=3)


def test_extract_zip_names_a_corrupt_or_truncated_archive_and_a_full_disk(tmp_path, monkeypatch):
    good = png_bytes()
    zip_path = tmp_path / "stored.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a/one.png", good)
        archive.writestr("a/two.png", good)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.index(good) + 500] ^= 0xFF  # damage one byte of the first member's data
    (tmp_path / "corrupt.zip").write_bytes(bytes(raw))
    (tmp_path / "data").mkdir()
    with raises_explained(r"corrupt.zip is corrupt at member 'a/one.png' \(Bad CRC-32"):
        download.extract_zip(tmp_path / "corrupt.zip", tmp_path / "data" / "x")

    (tmp_path / "truncated.zip").write_bytes(zip_path.read_bytes()[: len(raw) // 2])
    with raises_explained("truncated.zip is not a complete zip archive .*; it is probably truncated"):
        download.extract_zip(tmp_path / "truncated.zip", tmp_path / "data" / "x")

    monkeypatch.setattr(common, "free_disk_bytes", lambda path: 1000)
    with raises_explained(r"extracting stored.zip needs 0.02 GB free in .* but only 0.00 GB is free"):
        download.extract_zip(zip_path, tmp_path / "data" / "x")
    assert os.listdir(tmp_path / "data") == []


# ------------------------------------------------------------------ the FFHQ/StyleGAN download


class RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves `payload`; the first request is cut off after `cut` bytes, later ones honour Range."""

    payload = b""
    cut = 0
    ranges = []

    def do_GET(self):
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if len(type(self).ranges) == 1:
            self.wfile.write(self.payload[: self.cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def zip_server(tmp_path):
    # larger than two of gdown's 512 KiB chunks, so that the cut-off transfer leaves bytes on disk
    payload = dataset_zip(tmp_path / "served.zip", per_folder=3, padding=2 * 2**20).read_bytes()
    handler = type("Handler", (RangeServer,), {"payload": payload, "cut": len(payload) // 2, "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ffhq_style_gan.zip", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def plenty_of_space(monkeypatch):
    """The download tests must not depend on this machine's free disk space."""
    monkeypatch.setattr(common, "free_disk_bytes", lambda path: 10**12)


def test_download_resumes_after_an_interruption(tmp_path, zip_server, plenty_of_space):
    url, handler = zip_server
    data = tmp_path / "data"
    downloader = functools.partial(download.gdown_download, url=url)
    with raises_explained(
        r"downloading ffhq_style_gan.zip stopped .*; [0-9.]+ MB were received and kept, run `python -m iml ffhq-download` again to resume; or go on without it: "
        r"`python -m iml ffhq-standin` makes a synthetic stand-in .*`python -m iml ffhq-import --real .* --out data/faces` "
        r"imports faces you have \(then --data data/faces\)\.$"
    ):
        download.download_ffhq(data, verify3, downloader=downloader)
    parts = list(data.glob("ffhq_style_gan.zip*.part"))
    received = parts[0].stat().st_size
    assert len(parts) == 1 and 2**19 <= received <= handler.cut
    assert download.partial_download_bytes(data / "ffhq_style_gan.zip") == received
    assert not (data / "ffhq_style_gan").exists()

    source = download.download_ffhq(data, verify3, downloader=downloader)
    # gdown first asks for the file's headers without a range, then continues where the first run stopped
    assert handler.ranges == [None, None, f"bytes={received}-"]
    assert (data / "ffhq_style_gan.zip").read_bytes() == handler.payload
    assert source == data / "ffhq_style_gan" / "source_data"
    assert [p.name for p in util.list_images(source / "B_stylegan")] == [fake_name(i) for i in range(3)]

    # a complete dataset is not downloaded again
    def refuse(output):
        raise AssertionError("downloaded again")

    assert download.download_ffhq(data, verify3, downloader=refuse) == source


def test_download_checks_space_layout_and_counts(tmp_path, monkeypatch):
    data = tmp_path / "data"
    calls = []
    monkeypatch.setattr(common, "free_disk_bytes", lambda path: 10**9)
    with raises_explained(
        r"downloading and extracting ffhq_style_gan.zip needs 8.40 GB free in .* but only 1.00 GB is free"
    ):
        download.download_ffhq(data, download.verify_ffhq, downloader=calls.append)
    assert calls == []
    monkeypatch.setattr(common, "free_disk_bytes", lambda path: 10**12)

    def offline(output):
        raise ConnectionError("Failed to resolve 'drive.google.com'\nmore detail")

    with raises_explained(
        r"stopped \(ConnectionError: Failed to resolve 'drive.google.com'\); nothing was received, check that drive.google.com can be reached and run `python -m iml ffhq-download` again; "
        r"or go on without it: `python -m iml ffhq-standin` makes a synthetic stand-in \(then --data data/ffhq_standin\), "
        r"and `python -m iml ffhq-import --real .* --fake .* --out data/faces` imports faces you have"
    ):
        download.download_ffhq(data, download.verify_ffhq, downloader=offline)

    def wrong_counts(output):
        dataset_zip(output, per_folder=2)

    with raises_explained(
        r"ffhq_style_gan.zip does not hold the expected dataset \(.*A_ffhq holds 2 images, not 3\); nothing was kept"
    ):
        download.download_ffhq(data, verify3, downloader=wrong_counts)
    assert sorted(os.listdir(data)) == ["ffhq_style_gan.zip"]

    (data / "ffhq_style_gan" / "source_data" / "A_ffhq").mkdir(parents=True)
    with raises_explained(
        r"ffhq_style_gan exists but is not the complete dataset \(.*A_ffhq holds no image files.*\); delete it"
    ):
        download.download_ffhq(data, verify3, downloader=wrong_counts)


def test_an_archive_whose_table_of_contents_is_far_too_large_is_refused_before_zipfile_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "ffhq_style_gan.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(20):
            archive.writestr(f"source_data/A_ffhq/{i:05d}.png", b"")
    monkeypatch.setattr(download, "MAX_TABLE_OF_CONTENTS", 1000)
    monkeypatch.setattr(zipfile, "ZipFile", None)  # never reached
    with raises_explained(
        r"ffhq_style_gan.zip has a table of contents of 1,480 bytes, more than the 1,000 bytes of the FFHQ/StyleGAN "
        r"archive; delete it and run `python -m iml ffhq-download` again\.$"
    ):
        download.open_zip(path)
