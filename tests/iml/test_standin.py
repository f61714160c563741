"""src/iml/standin.py: the synthetic stand-in for FFHQ/StyleGAN, its images' statistics and its folder."""

import os

import numpy as np
from conftest import raises_explained
from PIL import Image

import util
from iml.standin import front_disks, make_standin, ragged_arange, standin_generator_weights, standin_image


def test_ragged_arange_counts_up_within_each_length():
    np.testing.assert_array_equal(ragged_arange(np.array([2, 3])), [0, 1, 0, 1, 2])
    np.testing.assert_array_equal(ragged_arange(np.array([0, 1, 0, 4])), [0, 0, 1, 2, 3])
    assert ragged_arange(np.array([3])).dtype == np.int32


def test_front_disks_finds_the_first_disk_over_each_pixel_center():
    rng = np.random.default_rng(0)
    size, count = 16, 25
    cx, cy = (rng.random(count, dtype=np.float32) * 20 - 2 for _ in range(2))  # some partly outside
    r = rng.uniform(0.3, 5, count).astype(np.float32)
    ys, xs = np.divmod(np.arange(size * size), size)
    inside = (xs[None] + 0.5 - cx[:, None]) ** 2 + (ys[None] + 0.5 - cy[:, None]) ** 2 <= r[:, None] ** 2
    expected = np.where(inside.any(axis=0), inside.argmax(axis=0), count)  # brute force, disk 0 in front
    got = front_disks(cx, cy, r, size)
    np.testing.assert_array_equal(got, expected)
    assert (got == count).any() and (got < count).any()


def mean_log_spectrum(images):
    """Mean over images and channels of log |FFT|^2, computed with numpy over axes (0, 1) of (H, W, C)."""
    spectra = [
        np.log(np.abs(np.fft.fftshift(np.fft.fft2(image / 255.0, axes=(0, 1)), axes=(0, 1))) ** 2 + 1e-12)
        for image in images
    ]
    return np.mean(spectra, axis=(0, 3))  # (H, W)


def test_standin_fakes_differ_from_reals_at_high_frequencies_and_reals_fall_as_one_over_f_squared():
    n = 32
    weights = standin_generator_weights(0)
    reals = [standin_image(0, False, i) for i in range(n)]
    fakes = [standin_image(0, True, i, weights) for i in range(n)]
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
    out = make_standin(tmp_path / "standin", per_class=5, seed=3, workers=1, provenance="made by a test")
    assert sorted(os.listdir(out)) == ["A_ffhq", "B_stylegan", "STANDIN.txt"]
    assert util.is_standin(out) and util.is_standin(out / "A_ffhq") and not util.is_standin(tmp_path)
    assert "STAND-IN DATA" in (out / "STANDIN.txt").read_text()
    assert "written by `made by a test`" in (out / "STANDIN.txt").read_text()
    reals, fakes = util.list_images(out / "A_ffhq"), util.list_images(out / "B_stylegan")
    assert [p.name for p in reals] == [f"0000{i}.png" for i in range(5)]
    assert [p.name for p in fakes] == [f"style_gan_ffhq_example{i}.png" for i in range(5)]
    for path in reals + fakes:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (128, 128))
    np.testing.assert_array_equal(util.read_rgb(fakes[4]), standin_image(3, True, 4))

    # the same seed gives the same files with any number of workers; another seed does not
    again = make_standin(tmp_path / "again", per_class=5, seed=3, workers=2)
    for name in ("A_ffhq/00004.png", "B_stylegan/style_gan_ffhq_example2.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert not np.array_equal(standin_image(4, False, 0), standin_image(3, False, 0))
    assert not np.array_equal(standin_image(3, False, 0), standin_image(3, False, 1))

    with raises_explained("standin already exists; delete it or pass --force to replace it"):
        make_standin(out, per_class=2, seed=0, workers=1)
    make_standin(out, per_class=2, seed=0, workers=1, force=True)
    assert len(util.list_images(out / "A_ffhq")) == 2
    assert sorted(os.listdir(tmp_path)) == ["again", "standin"]
