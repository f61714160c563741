"""src/iml/image_files.py: the check that a file is a 128x128 8-bit RGB PNG, made by Pillow without
decoding the pixels, against Pillow's decoding; load_folder's messages are tested in tests/test_util.py."""

import zlib

import numpy as np
from conftest import write_png
from PIL import Image

from iml.image_files import natural_key, png_problem


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
        assert (png_problem(path) is None) == expected, (mode, size, png_problem(path))


def test_png_check_reads_the_header_lazily_and_verifies_every_chunk(tmp_path):
    good = write_png(tmp_path / "good.png", seed=3).read_bytes()
    # the IHDR checksum, checked by Pillow when it opens the header
    raw = bytearray(good)
    raw[18] ^= 0x01
    (tmp_path / "header.png").write_bytes(bytes(raw))
    assert png_problem(tmp_path / "header.png") == "corrupt PNG header"
    # a flipped bit inside the compressed pixels: the header is sound, verify() finds the IDAT checksum wrong
    raw = bytearray(good)
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "pixels.png").write_bytes(bytes(raw))
    assert png_problem(tmp_path / "pixels.png") == "corrupt PNG (broken PNG file (bad header checksum in b'IDAT'))"
    (tmp_path / "cut.png").write_bytes(good[:-100])
    assert png_problem(tmp_path / "cut.png") == "truncated PNG"
    (tmp_path / "end.png").write_bytes(good[:-12])  # every pixel there, the end marker missing
    assert png_problem(tmp_path / "end.png") == "truncated PNG"
    # a 16-bit RGB file opens in Pillow's mode "RGB": its raw mode tells the depth
    raw = bytearray(good)
    raw[24] = 16
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    (tmp_path / "deep.png").write_bytes(bytes(raw))
    assert png_problem(tmp_path / "deep.png") == "16-bit instead of 8-bit"
    assert png_problem(tmp_path / "good.png") is None and png_problem(tmp_path / "good.png", 64) == (
        "128x128 instead of 64x64"
    )


def test_natural_key_orders_digit_runs_by_value():
    names = ["example10.png", "example2.png", "00010.png", "00009.png", "example1.png"]
    assert sorted(names, key=natural_key) == ["00009.png", "00010.png", "example1.png", "example2.png", "example10.png"]
