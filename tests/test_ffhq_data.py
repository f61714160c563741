import functools
import http.server
import io
import os
import re
import subprocess
import sys
import threading
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

import util


def write_png(path, array=None, mode="RGB", size=util.IMAGE_SIZE, seed=0):
    """A small random PNG; `array` overrides the random pixels."""
    if array is None:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        array = np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)
        array = array[:, :, 0] if channels == 1 else array
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def png_bytes(seed=0):
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (util.IMAGE_SIZE, util.IMAGE_SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="png")
    return buffer.getvalue()


def make_zip(path, members):
    """members: (name, bytes) pairs, or (ZipInfo, bytes) for special entries."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def dataset_zip(path, per_folder, top="ffhq_style_gan", padding=0):
    members = [(f"{top}/README.txt", np.random.default_rng(0).bytes(padding))]
    members += [(f"{top}/source_data/{util.REAL_FOLDER}/{util.real_name(i)}", png_bytes(i)) for i in range(per_folder)]
    members += [
        (f"{top}/source_data/{util.FAKE_FOLDER}/{util.fake_name(i)}", png_bytes(100 + i)) for i in range(per_folder)
    ]
    return make_zip(path, members)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def symlink_member(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info, target


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
    with pytest.raises(util.UserError, match=message):
        util.extract_zip(zip_path, target)
    assert tree(tmp_path) == before


def test_extract_zip_lays_out_like_unzip(tmp_path):
    data = png_bytes()
    with_top = make_zip(
        tmp_path / "a.zip", [("ffhq_style_gan/source_data/A_ffhq/00000.png", data), ("__MACOSX/._junk", b"x")]
    )
    util.extract_zip(with_top, tmp_path / "one" / "ffhq_style_gan")
    assert tree(tmp_path / "one") == [
        "ffhq_style_gan",
        "ffhq_style_gan/source_data",
        "ffhq_style_gan/source_data/A_ffhq",
        "ffhq_style_gan/source_data/A_ffhq/00000.png",
    ]
    assert (tmp_path / "one/ffhq_style_gan/source_data/A_ffhq/00000.png").read_bytes() == data
    # without the top-level folder the members go inside the target
    without_top = make_zip(tmp_path / "b.zip", [("source_data/A_ffhq/00000.png", data)])
    util.extract_zip(without_top, tmp_path / "two" / "ffhq_style_gan")
    assert (tmp_path / "two/ffhq_style_gan/source_data/A_ffhq/00000.png").read_bytes() == data
    with pytest.raises(util.UserError, match="ffhq_style_gan already exists; delete it to extract b.zip again"):
        util.extract_zip(without_top, tmp_path / "two" / "ffhq_style_gan")


def test_interrupted_extraction_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    zip_path = dataset_zip(tmp_path / "in.zip", per_folder=3)
    data = tmp_path / "data"
    data.mkdir()
    calls = []
    copy = util.shutil.copyfileobj

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return copy(*args, **kwargs)

    monkeypatch.setattr(util.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        util.extract_zip(zip_path, data / "ffhq_style_gan")
    assert len(calls) == 4 and os.listdir(data) == []

    # a run killed outright leaves its hidden folder; the next run removes it and succeeds
    stale = data / ".ffhq_style_gan.partial-killed"
    (stale / "source_data").mkdir(parents=True)
    monkeypatch.setattr(util.shutil, "copyfileobj", copy)
    util.extract_zip(zip_path, data / "ffhq_style_gan")
    assert os.listdir(data) == ["ffhq_style_gan"]
    util.verify_ffhq(data / "ffhq_style_gan" / "source_data", per_folder=3)


def test_extract_zip_corrupt_truncated_and_full_disk(tmp_path, monkeypatch):
    good = png_bytes()
    zip_path = tmp_path / "stored.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a/one.png", good)
        archive.writestr("a/two.png", good)
    raw = bytearray(zip_path.read_bytes())
    raw[raw.index(good) + 500] ^= 0xFF  # damage one byte of the first member's data
    (tmp_path / "corrupt.zip").write_bytes(bytes(raw))
    (tmp_path / "data").mkdir()
    with pytest.raises(util.UserError, match=r"corrupt.zip is corrupt at member 'a/one.png' \(Bad CRC-32"):
        util.extract_zip(tmp_path / "corrupt.zip", tmp_path / "data" / "x")

    (tmp_path / "truncated.zip").write_bytes(zip_path.read_bytes()[: len(raw) // 2])
    with pytest.raises(
        util.UserError, match="truncated.zip is not a complete zip archive .*; it is probably truncated"
    ):
        util.extract_zip(tmp_path / "truncated.zip", tmp_path / "data" / "x")

    monkeypatch.setattr(util, "free_disk_bytes", lambda path: 1000)
    with pytest.raises(
        util.UserError, match=r"extracting stored.zip needs 0.02 GB free in .* but only 0.00 GB is free"
    ):
        util.extract_zip(zip_path, tmp_path / "data" / "x")
    assert os.listdir(tmp_path / "data") == []


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
    monkeypatch.setattr(util, "free_disk_bytes", lambda path: 10**12)


def test_download_resumes_after_an_interruption(tmp_path, zip_server, plenty_of_space):
    url, handler = zip_server
    data = tmp_path / "data"
    downloader = functools.partial(util.gdown_download, url=url)
    with pytest.raises(
        util.UserError,
        match=r"downloading ffhq_style_gan.zip stopped .*; [0-9.]+ MB were received and kept, run `python src/util.py ffhq-download` again to resume\.$",
    ):
        util.download_ffhq(data, downloader=downloader, per_folder=3)
    parts = list(data.glob("ffhq_style_gan.zip*.part"))
    received = parts[0].stat().st_size
    assert len(parts) == 1 and 2**19 <= received <= handler.cut
    assert not (data / "ffhq_style_gan").exists()

    source = util.download_ffhq(data, downloader=downloader, per_folder=3)
    # gdown first asks for the file's headers without a range, then continues where the first run stopped
    assert handler.ranges == [None, None, f"bytes={received}-"]
    assert (data / "ffhq_style_gan.zip").read_bytes() == handler.payload
    assert source == data / "ffhq_style_gan" / "source_data"
    assert [p.name for p in util.list_images(source / "B_stylegan")] == [util.fake_name(i) for i in range(3)]

    # a complete dataset is not downloaded again
    def refuse(output):
        raise AssertionError("downloaded again")

    assert util.download_ffhq(data, downloader=refuse, per_folder=3) == source


def test_download_checks_space_layout_and_counts(tmp_path, monkeypatch):
    data = tmp_path / "data"
    calls = []
    monkeypatch.setattr(util, "free_disk_bytes", lambda path: 10**9)
    with pytest.raises(
        util.UserError,
        match=r"downloading and extracting ffhq_style_gan.zip needs 8.40 GB free in .* but only 1.00 GB is free",
    ):
        util.download_ffhq(data, downloader=calls.append)
    assert calls == []
    monkeypatch.setattr(util, "free_disk_bytes", lambda path: 10**12)

    def offline(output):
        raise ConnectionError("Failed to resolve 'drive.google.com'\nmore detail")

    with pytest.raises(
        util.UserError,
        match=r"stopped \(ConnectionError: Failed to resolve 'drive.google.com'\); nothing was received, check that drive.google.com can be reached and run `python src/util.py ffhq-download` again\.$",
    ):
        util.download_ffhq(data, downloader=offline)

    def wrong_counts(output):
        dataset_zip(output, per_folder=2)

    with pytest.raises(
        util.UserError,
        match=r"ffhq_style_gan.zip does not hold the expected dataset \(.*A_ffhq holds 2 images, not 3\); nothing was kept",
    ):
        util.download_ffhq(data, downloader=wrong_counts, per_folder=3)
    assert sorted(os.listdir(data)) == ["ffhq_style_gan.zip"]

    (data / "ffhq_style_gan" / "source_data" / "A_ffhq").mkdir(parents=True)
    with pytest.raises(
        util.UserError,
        match=r"ffhq_style_gan exists but is not the complete dataset \(.*A_ffhq holds no image files.*\); delete it",
    ):
        util.download_ffhq(data, downloader=wrong_counts, per_folder=3)


def test_load_folder_order_split_and_sizes(tmp_path):
    fakes = tmp_path / "B_stylegan"
    for i in reversed(range(12)):
        write_png(fakes / util.fake_name(i), seed=i)
    (fakes / ".DS_Store").write_bytes(b"\0")
    train, val, test = util.load_folder(fakes, 8, 2, 2)
    # natural order: example2 before example10 (plain string order would put example10 third)
    assert [p.name for p in train] == [util.fake_name(i) for i in range(8)]
    assert [p.name for p in val] == [util.fake_name(8), util.fake_name(9)]
    assert [p.name for p in test] == [util.fake_name(10), util.fake_name(11)]
    train, val, test = util.load_folder(str(fakes), 3, 0, 4)
    assert (len(train), len(val), len(test)) == (3, 0, 4)
    assert not set(train) & set(test) and test[0].name == util.fake_name(3)
    assert util.natural_key("00010.png") > util.natural_key("00009.png")

    with pytest.raises(
        util.UserError,
        match=r"holds 12 usable images, fewer than the 13 asked for \(train 10 \+ validation 2 \+ test 1\)",
    ):
        util.load_folder(fakes, 10, 2, 1)
    with pytest.raises(util.UserError, match=r"A_ffhq does not exist; run `python src/util.py ffhq-download` to fetch"):
        util.load_folder(tmp_path / "A_ffhq", 1, 1, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(util.UserError, match="empty holds no image files"):
        util.load_folder(tmp_path / "empty", 1, 1, 1)


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
def test_load_folder_names_files_that_are_not_128_rgb_png(tmp_path, kind, capsys):
    folder = tmp_path / "A_ffhq"
    for i in range(3):
        write_png(folder / util.real_name(i), seed=i)
    name, reason = bad_file(folder, kind)
    pattern = rf"^1 of 4 files in .*A_ffhq are not 128x128 RGB PNG images: {name} \({reason}\); replace or delete them, or pass skip_unreadable=True"
    with pytest.raises(util.UserError, match=pattern):
        util.load_folder(folder, 1, 1, 1)
    train, val, test = util.load_folder(folder, 1, 1, 1, skip_unreadable=True)
    assert [p.name for p in train + val + test] == ["00000.png", "00001.png", "00002.png"]
    assert "warning: skipped 1 of 4 files in" in capsys.readouterr().err


def test_load_folder_lists_many_bad_files_briefly(tmp_path):
    folder = tmp_path / "A_ffhq"
    for i in range(8):
        write_png(folder / util.real_name(i), size=32, seed=i)
    with pytest.raises(
        util.UserError,
        match=r"8 of 8 files .*: 00000.png \(32x32 instead of 128x128\), .*00004.png \(32x32 instead of 128x128\) and 3 more;",
    ):
        util.load_folder(folder, 1, 0, 0)


def test_png_header_check_agrees_with_pillow(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(40):
        mode = ["RGB", "RGBA", "L", "P", "LA"][i % 5]
        size = int(rng.choice([127, 128, 129]))
        image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).convert(mode)
        path = tmp_path / f"{i}.png"
        image.save(path)
        with Image.open(path) as decoded:
            expected = decoded.mode == "RGB" and decoded.size == (128, 128)
        assert (util.png_problem(path) is None) == expected, (mode, size, util.png_problem(path))


def mean_log_spectrum(images):
    """Mean over images and channels of log |FFT|^2, computed with numpy over axes (0, 1) of (H, W, C)."""
    spectra = [
        np.log(np.abs(np.fft.fftshift(np.fft.fft2(image / 255.0, axes=(0, 1)), axes=(0, 1))) ** 2 + 1e-12)
        for image in images
    ]
    return np.mean(spectra, axis=(0, 3))  # (H, W)


def test_standin_fakes_differ_from_reals_at_high_frequencies():
    n = 32
    weights = util.standin_generator_weights(0)
    reals = [util.standin_image(0, False, i) for i in range(n)]
    fakes = [util.standin_image(0, True, i, weights) for i in range(n)]
    real, fake = mean_log_spectrum(reals), mean_log_spectrum(fakes)
    fy, fx = np.mgrid[-64:64, -64:64]
    radius = np.hypot(fx, fy)
    # the 2x upsampling puts replicas of the image at the highest frequencies (|fx|, |fy| near 64)
    replica = (np.abs(fx) >= 60) & (np.abs(fy) >= 60)
    low = radius < 16
    assert (fake - real)[replica].mean() > 1.5
    assert abs((fake - real)[low].mean()) < 0.3  # the content below a quarter of Nyquist matches
    per_image = [mean_log_spectrum([x])[replica].mean() for x in reals + fakes]
    assert min(per_image[n:]) > max(per_image[:n])  # the margin holds image by image, not only on average

    # the "real" images have natural-image statistics: power falls about as 1/f^2 (measured below
    # half the Nyquist frequency; above it the slight optical blur makes it fall faster, as in photos)
    bands = np.arange(4, 32)
    power = [np.exp(real[(radius >= f) & (radius < f + 1)]).mean() for f in bands]
    slope = np.polyfit(np.log(bands), np.log(power), 1)[0]
    assert -2.8 < slope < -1.8


def test_make_standin_layout_format_and_determinism(tmp_path):
    out = util.make_standin(tmp_path / "standin", per_class=5, seed=3, workers=1)
    assert sorted(os.listdir(out)) == ["A_ffhq", "B_stylegan", "STANDIN.txt"]
    assert util.is_standin(out) and util.is_standin(out / "A_ffhq") and not util.is_standin(tmp_path)
    assert "STAND-IN DATA" in (out / "STANDIN.txt").read_text()
    reals, fakes = util.list_images(out / "A_ffhq"), util.list_images(out / "B_stylegan")
    assert [p.name for p in reals] == [f"0000{i}.png" for i in range(5)]
    assert [p.name for p in fakes] == [f"style_gan_ffhq_example{i}.png" for i in range(5)]
    for path in reals + fakes:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (128, 128))
    np.testing.assert_array_equal(util.read_rgb(fakes[4]), util.standin_image(3, True, 4))

    # the same seed gives the same files with any number of workers; another seed does not
    again = util.make_standin(tmp_path / "again", per_class=5, seed=3, workers=2)
    for name in ("A_ffhq/00004.png", "B_stylegan/style_gan_ffhq_example2.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert not np.array_equal(util.standin_image(4, False, 0), util.standin_image(3, False, 0))
    assert not np.array_equal(util.standin_image(3, False, 0), util.standin_image(3, False, 1))

    with pytest.raises(util.UserError, match="standin already exists; delete it or pass --force to replace it"):
        util.make_standin(out, per_class=2, seed=0, workers=1)
    util.make_standin(out, per_class=2, seed=0, workers=1, force=True)
    assert len(util.list_images(out / "A_ffhq")) == 2
    assert sorted(os.listdir(tmp_path)) == ["again", "standin"]

    paths = util.save_ffhq_examples(out, tmp_path / "figures", index=1)
    assert [p.name for p in paths] == ["real.png", "fake.png"]
    with Image.open(paths[0]) as figure:
        assert figure.format == "PNG" and figure.size[0] > 600


def test_command_line_errors_are_one_line(tmp_path):
    missing = tmp_path / "nothing"
    result = subprocess.run(
        [
            sys.executable,
            str(util.ROOT / "src" / "util.py"),
            "ffhq-examples",
            "--data",
            str(missing),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert (
        result.stderr.count("\n") == 1
        and "nothing/A_ffhq does not exist; run `python src/util.py ffhq-download`" in result.stderr
    )
