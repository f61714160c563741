"""src/iml/ffhq_import.py: any face pictures into the exercise's layout. Every written pixel is what
Pillow's own steps give (upright by EXIF, RGB, centred square, resize), the manifest says what was
done, unusable inputs are named, and nothing half-written is left behind."""

import csv
import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    SHARED_FACES,
    assert_clear_error,
    needs_shared_faces,
    raises_explained,
    run_cli,
    run_iml,
    run_script,
)
from PIL import Image, ImageOps

import util
from iml import data_cli, ffhq_import
from iml.ffhq_import import MANIFEST, MANIFEST_COLUMNS, RESAMPLING, import_faces, read_manifest
from iml.image_files import png_problem

SIZE = util.IMAGE_SIZE


# ------------------------------------------------------------------ making pictures


def noise(width, height, channels=3, seed=0):
    """Random uint8 pixels (height, width, channels), or (height, width) for one channel."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return pixels[:, :, 0] if channels == 1 else pixels


def save(path, image, **options):
    """Save a Pillow image (its format from the suffix), creating the folder; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def rotated_jpeg(path, width, height, orientation, seed):
    """A width x height JPEG whose EXIF says it must be turned (orientation 6 or 8) to stand upright."""
    exif = Image.Exif()
    exif[ffhq_import.ORIENTATION_TAG] = orientation
    return save(path, Image.fromarray(noise(width, height, seed=seed)), exif=exif, quality=92)


# name: (how to make it, format Pillow reports, mode in the file, stored size, EXIF orientation)
# The numbers in the names sort differently as text (face10 < face2) than naturally (face2 < face10).
MIX = {
    "face1.jpg": (
        lambda p: save(p, Image.fromarray(noise(300, 200, seed=1)), quality=90),
        "JPEG",
        "RGB",
        (300, 200),
        1,
    ),
    "face2.jpg": (
        lambda p: save(p, Image.frombytes("CMYK", (157, 331), noise(157, 331, 4, seed=2).tobytes())),
        "JPEG",
        "CMYK",
        (157, 331),
        1,
    ),
    "face3.png": (lambda p: save(p, Image.fromarray(noise(157, 331, seed=3))), "PNG", "RGB", (157, 331), 1),
    "face4.png": (lambda p: save(p, Image.fromarray(noise(300, 200, 4, seed=4))), "PNG", "RGBA", (300, 200), 1),
    "face5.png": (
        lambda p: save(p, Image.fromarray(noise(200, 300, seed=5)).quantize(64)),
        "PNG",
        "P",
        (200, 300),
        1,
    ),
    "face6.png": (lambda p: save(p, Image.fromarray(noise(331, 157, 1, seed=6))), "PNG", "L", (331, 157), 1),
    "face7.png": (
        lambda p: save(p, Image.fromarray(np.random.default_rng(7).integers(0, 65536, (200, 300), dtype=np.uint16))),
        "PNG",
        "I;16",
        (300, 200),
        1,
    ),
    "face8.webp": (lambda p: save(p, Image.fromarray(noise(200, 300, seed=8))), "WEBP", "RGB", (200, 300), 1),
    "face9.bmp": (lambda p: save(p, Image.fromarray(noise(300, 199, seed=9))), "BMP", "RGB", (300, 199), 1),
    "face10.tif": (lambda p: save(p, Image.fromarray(noise(157, 331, seed=10))), "TIFF", "RGB", (157, 331), 1),
    "face11.jpg": (lambda p: rotated_jpeg(p, 300, 200, 6, seed=11), "JPEG", "RGB", (300, 200), 6),
    "face12.jpg": (lambda p: rotated_jpeg(p, 331, 157, 8, seed=12), "JPEG", "RGB", (331, 157), 8),
}
FAKES = {
    "fake_9.png": (256, 256),
    "fake_10.png": (512, 300),
    "fake_100.png": (256, 256),
}


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """(real folder with MIX plus a hidden file and a subfolder, fake folder with FAKES)."""
    root = tmp_path_factory.mktemp("mix")
    real, fake = root / "real", root / "fake"
    for name, (make, *_) in MIX.items():
        make(real / name)
    (real / ".DS_Store").write_bytes(b"not a picture, and hidden")
    save(real / "thumbnails" / "face99.png", Image.fromarray(noise(200, 200, seed=99)))
    for seed, (name, (width, height)) in enumerate(FAKES.items()):
        save(fake / name, Image.fromarray(noise(width, height, seed=100 + seed)))
    return real, fake


def centerd_square(width, height):
    """The largest centred square, computed here on its own: half the excess on each side, rounded down."""
    side = min(width, height)
    left = (width - side) // 2
    upper = (height - side) // 2
    return left, upper, left + side, upper + side


def pillow_steps(path, resample, size=SIZE):
    """(uint8 pixels (size, size, 3), crop box) by Pillow's own steps, as the module documents them."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
    if upright.mode == "I;16":  # 16-bit grey, scaled to 8 bits by hand (convert would clip at 255)
        grey = np.asarray(upright).astype(np.float64) * (255 / 65535)
        upright = Image.fromarray(np.rint(grey).astype(np.uint8))
    rgb = upright.convert("RGB")
    box = centerd_square(*rgb.size)
    return np.asarray(rgb.crop(box).resize((size, size), resample)), box


def read_csv(path):
    """(header, rows as dicts) of a CSV file, read here without the module."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def png_pixels(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (SIZE, SIZE), path
        return np.asarray(image)


def rgb_picture(path, width=200, height=200, seed=0):
    return save(path, Image.fromarray(noise(width, height, seed=seed)))


def folders(tmp_path, reals=3, fakes=3):
    """Fresh real and fake folders of 200x200 PNG pictures."""
    real, fake = tmp_path / "real", tmp_path / "fake"
    for i in range(reals):
        rgb_picture(real / f"r{i}.png", seed=i)
    for i in range(fakes):
        rgb_picture(fake / f"f{i}.png", seed=50 + i)
    return real, fake


def leftovers(parent, name):
    """Hidden work folders or files `.name.partial-*` in `parent`."""
    return sorted(p.name for p in parent.glob(f".{name}.partial-*"))


def tree_bytes(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ pixels and manifest


@pytest.mark.parametrize("name", list(RESAMPLING))
def test_every_picture_gets_exactly_pillows_own_pixels_and_a_manifest_row(mix, tmp_path, name):
    real, fake = mix
    out = tmp_path / "out"
    rows = import_faces(real, fake, out, real_resample=name, fake_resample=name, workers=1)

    real_names = sorted(MIX, key=lambda n: int(re.search(r"\d+", n).group()))  # natural order, found here
    fake_names = sorted(FAKES, key=lambda n: int(re.search(r"\d+", n).group()))
    written_reals = sorted(p.name for p in (out / util.REAL_FOLDER).iterdir())
    written_fakes = sorted(p.name for p in (out / util.FAKE_FOLDER).iterdir())
    assert written_reals == [f"{i:05d}.png" for i in range(len(MIX))]  # hidden file and subfolder left out
    assert sorted(written_fakes) == sorted(f"style_gan_ffhq_example{i}.png" for i in range(len(FAKES)))
    assert sorted(p.name for p in out.iterdir()) == [util.REAL_FOLDER, util.FAKE_FOLDER, MANIFEST]

    header, manifest = read_csv(out / MANIFEST)
    assert tuple(header) == MANIFEST_COLUMNS
    assert manifest == read_manifest(out)
    assert [row["file"] for row in rows] == [row["file"] for row in manifest]
    expected_files = [f"{util.REAL_FOLDER}/{n}" for n in written_reals]
    expected_files += [f"{util.FAKE_FOLDER}/style_gan_ffhq_example{i}.png" for i in range(len(FAKES))]
    assert [row["file"] for row in manifest] == expected_files

    sources = [(real / n, "real") for n in real_names] + [(fake / n, "fake") for n in fake_names]
    for row, (source, label) in zip(manifest, sources):
        target = out / row["file"]
        assert png_problem(target) is None, target
        pixels, box = pillow_steps(source, RESAMPLING[name])
        np.testing.assert_array_equal(png_pixels(target), pixels, err_msg=f"{source.name} by {name}")
        if label == "real":
            _, format_, mode, (width, height), orientation = MIX[source.name]
        else:
            format_, mode, (width, height), orientation = "PNG", "RGB", FAKES[source.name], 1
        assert row == {
            "file": row["file"],
            "class": label,
            "source": os.path.abspath(source),
            "format": format_,
            "width": str(width),
            "height": str(height),
            "mode": mode,
            "orientation": str(orientation),
            "crop_box": " ".join(map(str, box)),
            "filter": name,
        }


def test_an_exif_rotated_picture_is_turned_upright_before_cropping(mix, tmp_path):
    real, fake = mix
    out = tmp_path / "out"
    import_faces(real, fake, out, workers=1)
    rows = {row["source"]: row for row in read_manifest(out)}
    # stored 300x200, orientation 6 (turn 90 degrees clockwise): cropped from a 200x300 picture
    row = rows[os.path.abspath(real / "face11.jpg")]
    assert (row["width"], row["height"], row["orientation"]) == ("300", "200", "6")
    assert row["crop_box"] == "0 50 200 250"
    got = png_pixels(out / row["file"])
    with Image.open(real / "face11.jpg") as image:
        stored = image.convert("RGB")
    turned = stored.transpose(Image.Transpose.ROTATE_270)  # orientation 6, written out by hand
    assert turned.size == (200, 300)
    np.testing.assert_array_equal(
        got, np.asarray(turned.crop((0, 50, 200, 250)).resize((SIZE, SIZE), RESAMPLING["lanczos"]))
    )
    unturned = np.asarray(stored.crop(centerd_square(300, 200)).resize((SIZE, SIZE), RESAMPLING["lanczos"]))
    assert np.abs(got.astype(int) - unturned).mean() > 20  # the stored, sideways picture is something else
    # orientation 8 (90 degrees the other way): 331x157 stored, 157x331 upright
    row = rows[os.path.abspath(real / "face12.jpg")]
    assert row["orientation"] == "8" and row["crop_box"] == f"0 {(331 - 157) // 2} 157 {(331 - 157) // 2 + 157}"


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white(mix, tmp_path):
    real, fake = mix
    import_faces(real, fake, tmp_path / "out", workers=1)
    (row,) = [r for r in read_manifest(tmp_path / "out") if r["source"].endswith("face7.png")]
    assert row["mode"] == "I;16"
    pixels = png_pixels(tmp_path / "out" / row["file"])
    assert (pixels[:, :, 0] == pixels[:, :, 2]).all()  # grey
    assert 100 < pixels.mean() < 155, pixels.mean()  # uniform 16-bit noise: mid-grey on average
    with Image.open(real / "face7.png") as image:
        clipped = np.asarray(image.convert("RGB"))
    assert clipped.mean() > 250  # what a plain convert("RGB") would have written


def test_center_square_takes_the_largest_centerd_square():
    for width, height in [(300, 200), (200, 300), (157, 331), (300, 199), (128, 128), (129, 128), (1, 7)]:
        box = ffhq_import.center_square(width, height)
        assert box == centerd_square(width, height)
        left, upper, right, lower = box
        assert right - left == lower - upper == min(width, height)
        assert min(left, upper) >= 0 and right <= width and lower <= height
        assert abs(left - (width - right)) <= 1 and abs(upper - (height - lower)) <= 1


# ------------------------------------------------------------------ unusable inputs


def unreadable_pair(folder):
    """A text file named .jpg and the first half of a valid JPEG's bytes, in `folder`."""
    (folder / "notes.jpg").write_text("these are my notes, not a picture\n")
    buffer = io.BytesIO()
    Image.fromarray(noise(256, 256, seed=3)).save(buffer, format="jpeg", quality=90)
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_unreadable_files_are_named_or_left_out_with_a_count(tmp_path, capsys):
    real, fake = folders(tmp_path)
    unreadable_pair(real)
    with raises_explained(
        r"^2 of 5 files in \S*real are not readable images: cut.jpg \(.*truncated.*\), notes.jpg \(.+\); "
        r".*\(--skip-unreadable on the command line\) to leave them out\.$"
    ):
        import_faces(real, fake, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")

    rows = import_faces(real, fake, tmp_path / "out", skip_unreadable=True, workers=1)
    err = capsys.readouterr().err
    assert re.search(
        r"warning: skipped 2 of 5 files in \S*real, which are not readable images: cut.jpg .*notes.jpg", err
    )
    assert [Path(row["source"]).name for row in rows if row["class"] == "real"] == ["r0.png", "r1.png", "r2.png"]
    assert sorted(p.name for p in (tmp_path / "out" / util.REAL_FOLDER).iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert len(list((tmp_path / "out" / util.FAKE_FOLDER).iterdir())) == 3


def test_a_folder_of_nothing_but_unreadable_files_is_refused_even_when_skipping(tmp_path):
    real, fake = folders(tmp_path, reals=0)
    real.mkdir()
    unreadable_pair(real)
    with raises_explained(r"real holds no readable images; give a folder of face pictures\.$"):
        import_faces(real, fake, tmp_path / "out", skip_unreadable=True, workers=1)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


def minimal_png(width, height):
    """A valid-looking PNG header claiming width x height RGB pixels, with almost no data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_empty_files_and_decompression_bombs_are_unreadable_not_a_traceback(tmp_path):
    real, fake = folders(tmp_path)
    (fake / "empty.png").write_bytes(b"")
    (fake / "bomb.png").write_bytes(minimal_png(30_000, 30_000))
    with raises_explained(
        r"2 of 5 files in \S*fake are not readable images: bomb.png \(too large: more pixels than Pillow decodes from untrusted files\), empty.png"
    ):
        import_faces(real, fake, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


def test_a_picture_file_larger_than_any_pillow_decodes_is_refused_by_its_size(tmp_path):
    real, fake = folders(tmp_path)
    with open(fake / "huge.tif", "wb") as file:
        file.truncate(2 * 2**30)  # sparse: no disk space
    with raises_explained(
        r"1 of 4 files in \S*fake are not readable images: huge.tif \(is 2,048 MiB, more than the 1,024 MiB of the "
        r"largest picture Pillow decodes\)"
    ):
        import_faces(real, fake, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


def test_a_manifest_too_large_to_be_one_is_refused_before_it_is_read(tmp_path, monkeypatch):
    (tmp_path / MANIFEST).write_text(",".join(MANIFEST_COLUMNS) + "\n" + "a" * 200)
    monkeypatch.setattr(ffhq_import, "MAX_MANIFEST_BYTES", 100)
    with raises_explained(
        r"MANIFEST.csv is 271 bytes, more than the 100 bytes that ffhq-import writes for up to 500,000 pictures; "
        r"it was not written by ffhq-import, delete it or import the pictures again with "
        rf"`python -m iml ffhq-import --real DIR --fake DIR --out {tmp_path} --force`\.$"
    ):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path / "elsewhere") == []


def test_the_command_line_names_unreadable_files_in_one_line_and_writes_nothing(tmp_path):
    real, fake = folders(tmp_path)
    unreadable_pair(fake)
    out = tmp_path / "out"
    result = run_iml("ffhq-import", "--real", real, "--fake", fake, "--out", out, "--workers", "1")
    line = assert_clear_error(result, "cut.jpg", "notes.jpg", "--skip-unreadable")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert line.startswith("error: 2 of 5 files in ")
    assert not out.exists() and not leftovers(tmp_path, "out")


def test_a_picture_smaller_than_the_size_is_refused_by_name_unless_upscaling_is_allowed(tmp_path):
    real, fake = folders(tmp_path)
    tiny = rgb_picture(real / "tiny.png", 100, 150, seed=9)
    with raises_explained(
        r"^1 of 4 files in \S*real are smaller than 128x128 after cropping to a square: tiny.png \(100x150\b.*"
        r"\(--allow-upscale on the command line\)\.$"
    ):
        import_faces(real, fake, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")

    rows = import_faces(real, fake, tmp_path / "out", allow_upscale=True, workers=1)
    (row,) = [r for r in rows if r["source"] == os.path.abspath(tiny)]
    assert row["crop_box"] == "0 25 100 125"
    expected, _ = pillow_steps(tiny, RESAMPLING["lanczos"])
    np.testing.assert_array_equal(png_pixels(tmp_path / "out" / row["file"]), expected)


def test_a_smaller_size_accepts_the_smaller_picture(tmp_path):
    real, fake = folders(tmp_path)
    rgb_picture(real / "tiny.png", 100, 150, seed=9)
    import_faces(real, fake, tmp_path / "out", size=64, workers=1)
    for path in (tmp_path / "out" / util.REAL_FOLDER).iterdir():
        assert png_problem(path, 64) is None


def test_missing_or_empty_folders_and_unknown_filters_are_refused(tmp_path):
    real, fake = folders(tmp_path)
    with raises_explained(r"nowhere is not a folder; give a folder of face pictures\.$"):
        import_faces(tmp_path / "nowhere", fake, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.png").write_bytes(fake.joinpath("f0.png").read_bytes())
    with raises_explained(
        r"empty holds no files \(hidden files, subfolders and broken links are not read\); give a folder"
    ):
        import_faces(real, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match=r"unknown resampling filter 'antialias'; choose one of nearest, box, "):
        import_faces(real, fake, tmp_path / "out", fake_resample="antialias")
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


# ------------------------------------------------------------------ the output folder


def test_an_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path):
    real, fake = folders(tmp_path)
    out = tmp_path / "out"
    import_faces(real, fake, out, real_resample="nearest", workers=1)
    (out / "stray.txt").write_text("from an earlier run")
    before = tree_bytes(out)
    with raises_explained(r"out already exists; delete it or pass --force to replace it\.$"):
        import_faces(real, fake, out, workers=1)
    assert tree_bytes(out) == before
    import_faces(real, fake, out, force=True, workers=1)
    assert not (out / "stray.txt").exists()
    assert {row["filter"] for row in read_manifest(out)} == {"lanczos"}
    assert not leftovers(tmp_path, "out")


@pytest.mark.parametrize("where", ["real", "fake", "."])
def test_an_output_folder_that_holds_a_source_is_refused_and_the_sources_are_untouched(tmp_path, where):
    real, fake = folders(tmp_path)
    before = tree_bytes(tmp_path)
    out = (tmp_path / where).resolve()
    with raises_explained(r"^the output folder \S+ holds the pictures of \S+; choose another output folder\.$"):
        import_faces(real, fake, out, force=True, workers=1)
    assert tree_bytes(tmp_path) == before
    assert not list(tmp_path.rglob(".*partial-*"))


def test_a_failure_late_in_the_import_leaves_no_output_and_no_work_folder(tmp_path):
    real, fake = folders(tmp_path, reals=4)
    (fake / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # found after every real is written
    with raises_explained(r"zz_broken.png"):
        import_faces(real, fake, tmp_path / "data" / "out", workers=2)
    assert not (tmp_path / "data" / "out").exists()
    assert not leftovers(tmp_path / "data", "out")


def test_an_output_that_is_a_file_is_refused_even_with_force(tmp_path):
    real, fake = folders(tmp_path)
    (tmp_path / "out").write_text("a file, not a folder")
    with raises_explained(r"^the output folder .*out is a file; give the name of a folder to write\.$"):
        import_faces(real, fake, tmp_path / "out", force=True, workers=1)
    assert (tmp_path / "out").read_text() == "a file, not a folder"
    assert not leftovers(tmp_path, "out")


def test_replacing_a_folder_removes_files_and_folders_left_aside(tmp_path):
    from iml.common import replace_folder

    (tmp_path / "new").mkdir()
    (tmp_path / "target").write_text("a file")
    (tmp_path / ".target.partial-old").write_text("left by a killed run")
    replace_folder(tmp_path / "new", tmp_path / "target")
    assert (tmp_path / "target").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_a_file_name_that_is_not_utf8_is_imported_and_escaped_in_the_manifest(tmp_path):
    real, fake = folders(tmp_path)
    rgb_picture(real / "gesicht\udcff.png", seed=7)  # bytes b"gesicht\xff.png", as an old Latin-1 system names it
    rows = import_faces(real, fake, tmp_path / "out", workers=1)
    manifest = read_manifest(tmp_path / "out")
    assert len(rows) == 7 and len(manifest) == 7
    assert any(row["source"].endswith("gesicht\\udcff.png") for row in manifest)


def test_two_workers_write_the_same_bytes_as_one(mix, tmp_path):
    real, fake = mix
    import_faces(real, fake, tmp_path / "one", real_resample="bicubic", workers=1)
    import_faces(real, fake, tmp_path / "two", real_resample="bicubic", workers=2)
    one, two = tree_bytes(tmp_path / "one"), tree_bytes(tmp_path / "two")
    assert len(one) == len(MIX) + len(FAKES) + 1
    assert one == two


def test_non_ascii_names_are_kept_in_the_manifest(tmp_path):
    real, fake = folders(tmp_path)
    rgb_picture(real / "gesicht_ä_😀.png", seed=8)
    import_faces(real, fake, tmp_path / "out", workers=1)
    sources = [Path(row["source"]).name for row in read_manifest(tmp_path / "out")]
    assert "gesicht_ä_😀.png" in sources


# ------------------------------------------------------------------ the command line


def test_the_command_line_takes_one_filter_per_class(tmp_path, monkeypatch, capsys):
    real, fake = folders(tmp_path, reals=2, fakes=2)
    rgb_picture(real / "wide.png", 301, 211, seed=5)  # a picture the two filters resize differently
    out = tmp_path / "out"
    argv = ["ffhq-import", "--real", str(real), "--fake", str(fake), "--out", str(out), "--workers", "1"]
    argv += ["--resample", "nearest", "--fake-resample", "lanczos"]
    assert run_cli(data_cli, argv, monkeypatch, script="iml") == "ran"
    assert re.search(r"wrote 3 real \(nearest\) and 2 fake \(lanczos\) 128x128 PNG images", capsys.readouterr().out)
    rows = read_manifest(out)
    assert [row["filter"] for row in rows] == ["nearest"] * 3 + ["lanczos"] * 2
    for row in rows:
        expected, _ = pillow_steps(row["source"], RESAMPLING[row["filter"]])
        np.testing.assert_array_equal(png_pixels(out / row["file"]), expected)
    (wide,) = [row for row in rows if row["source"].endswith("wide.png")]
    by_lanczos, _ = pillow_steps(wide["source"], RESAMPLING["lanczos"])
    assert not np.array_equal(png_pixels(out / wide["file"]), by_lanczos)


# ------------------------------------------------------------------ real photographs


@pytest.fixture(scope="module")
def shared_import(tmp_path_factory):
    """The shared FFHQ and StyleGAN faces, imported with the default filter (Lanczos)."""
    out = tmp_path_factory.mktemp("faces") / "data"
    import_faces(SHARED_FACES / "real", SHARED_FACES / "fake", out, workers=2)
    return out


@needs_shared_faces
def test_the_shared_faces_import_into_the_exercises_layout(shared_import):
    rows = read_manifest(shared_import)
    reals = util.list_images(shared_import / util.REAL_FOLDER)
    fakes = util.list_images(shared_import / util.FAKE_FOLDER)
    assert len(reals) == len([p for p in (SHARED_FACES / "real").iterdir() if not p.name.startswith(".")])
    assert len(fakes) == len([p for p in (SHARED_FACES / "fake").iterdir() if not p.name.startswith(".")])
    assert len(rows) == len(reals) + len(fakes)
    assert all(png_problem(shared_import / row["file"]) is None for row in rows[::10])
    assert {row["format"] for row in rows if row["class"] == "real"} <= {"JPEG", "PNG"}
    first = rows[0]
    expected, _ = pillow_steps(first["source"], RESAMPLING["lanczos"])
    np.testing.assert_array_equal(png_pixels(shared_import / first["file"]), expected)


@needs_shared_faces
def test_task3_runs_end_to_end_on_imported_photographs(shared_import, tmp_path):
    figures = tmp_path / "figures"
    result = run_script(
        "deepfake_interpretation.py",
        *["--data", shared_import, "--out", figures, "--device", "cpu", "--workers", "1", "--epochs", "2"],
        *["--train-size", "60", "--val-size", "10", "--test-size", "30", "--batch-size", "60"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout
    assert "imported (reals by lanczos, fakes by lanczos)" in log
    # the default run is the exercise's: one representation (the log FFT), so its lines carry no prefix
    assert re.search(r"^training accuracy \d+\.\d\d% on 120 images$", log, re.MULTILINE), log
    assert re.search(r"^test accuracy \d+\.\d\d% \(95 % interval [\d.]+%-[\d.]+%\) on 60 images$", log, re.MULTILINE), (
        log
    )
    for name in ["deepfake_spectra.png", "deepfake_weights.png"]:
        with Image.open(figures / name) as image:
            assert image.format == "PNG" and image.size[0] > 500


# ------------------------------------------------------------------ found by trying it as a newcomer


@pytest.mark.parametrize(
    ("array", "expected_max"),
    [
        (np.linspace(0, 1, 200 * 200, dtype=np.float32).reshape(200, 200), 255),  # float in [0, 1]
        (np.linspace(0, 255, 200 * 200, dtype=np.float32).reshape(200, 200), 255),  # float in [0, 255]
        (np.linspace(0, 255, 200 * 200).astype(np.int32).reshape(200, 200), 255),  # 32-bit integer, 8-bit range
        (np.linspace(0, 65535, 200 * 200).astype(np.int32).reshape(200, 200), 255),  # 32-bit integer, 16-bit range
    ],
)
def test_float_and_32_bit_grey_keep_their_brightness(tmp_path, array, expected_max):
    real, fake = folders(tmp_path)
    Image.fromarray(array).save(real / "grey.tif")
    import_faces(real, fake, tmp_path / "out", workers=1)
    (row,) = [r for r in read_manifest(tmp_path / "out") if r["source"].endswith("grey.tif")]
    pixels = png_pixels(tmp_path / "out" / row["file"])
    # the full range survives (the resize may round the brightest pixel down by one or two)
    assert pixels.max() >= expected_max - 2 and pixels.min() <= 1, (row["mode"], pixels.min(), pixels.max())


def test_a_decompression_bomb_is_refused_not_decoded(tmp_path):
    real, fake = folders(tmp_path)
    Image.new("L", (10_000, 10_000)).save(real / "bomb.png")  # 100 million pixels in a few hundred kB
    with raises_explained(r"bomb\.png \(too large: more pixels than Pillow decodes from untrusted files\)"):
        import_faces(real, fake, tmp_path / "out", workers=1)
    rows = import_faces(real, fake, tmp_path / "out", skip_unreadable=True, workers=1)
    assert len(rows) == 6


def test_the_same_folder_for_reals_and_fakes_is_refused(tmp_path):
    real, _ = folders(tmp_path)
    with raises_explained(r"the real and the fake pictures are the same folder, .*real; give two folders\.$"):
        import_faces(real, real / ".." / "real", tmp_path / "out", workers=1)


def test_a_folder_of_nothing_readable_says_what_is_not_read(tmp_path):
    real, fake = folders(tmp_path)
    empty = tmp_path / "links"
    empty.mkdir()
    (empty / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (empty / ".hidden.png").write_bytes(b"")
    (empty / "sub").mkdir()
    with raises_explained(r"links holds no files \(hidden files, subfolders and broken links are not read\)"):
        import_faces(empty, fake, tmp_path / "out", workers=1)
