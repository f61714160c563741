import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image

import util
from deepfake_interpretation import (
    EPS,
    LinearDetector,
    WelfordEstimator,
    build_parser,
    check_data_folder,
    class_means,
    dct2,
    dct_matrix,
    decode_images,
    evaluate,
    load_splits,
    log_dct,
    log_fft,
    radial_profile,
    read_image,
    run,
    standardisation,
    transform,
)

PER_CLASS = 120  # 80 train, 10 validation, 30 test per source
SIZES = ["--train-size", "80", "--val-size", "10", "--test-size", "30"]
FIGURES = [
    "deepfake_mean_fft.png",
    "deepfake_radial_profile.png",
    "deepfake_weights_fft.png",
    "deepfake_mean_dct.png",
    "deepfake_weights_dct.png",
    "deepfake_mean_pixel.png",
    "deepfake_weights_pixel.png",
]


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """A tiny stand-in dataset: PER_CLASS synthetic 'real' and 'fake' 128x128 PNGs."""
    return util.make_standin(tmp_path_factory.mktemp("ffhq") / "standin", per_class=PER_CLASS, seed=0, workers=2)


@pytest.fixture(scope="session")
def full_run(standin, tmp_path_factory):
    """One end-to-end run of all three representations on the stand-in: (args, results, log)."""
    out = tmp_path_factory.mktemp("figures")
    args = build_parser().parse_args(
        ["--data", str(standin), *SIZES, "--representation", "all", "--batch-size", "40", "--out", str(out)]
        + ["--device", "cpu", "--workers", "2"]
    )
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        results = run(args)
    return args, {r["representation"]: r for r in results}, log.getvalue()


def random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def save_pngs(folder, arrays):
    """Write each uint8 array as 00.png, 01.png, ... in `folder`; returns the paths."""
    files = [folder / f"{i:02d}.png" for i in range(len(arrays))]
    for path, array in zip(files, arrays):
        Image.fromarray(array).save(path)
    return files


def test_transform_is_the_2d_spectrum_of_rows_and_columns():
    x = random_images((3, 128, 128, 3))
    got = transform(x)
    assert got.shape == x.shape
    expected = np.log(np.abs(np.fft.fft2(x.astype(np.float64), axes=(-3, -2))) + EPS)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # channel by channel: the colour axis is not transformed
    np.testing.assert_allclose(got[1, :, :, 2], np.log(np.abs(np.fft.fft2(x[1, :, :, 2].astype(float))) + EPS))
    # np.fft.fft2's default axes (width and colour) would give something else
    assert not np.allclose(got, np.log(np.abs(np.fft.fft2(x)) + EPS), atol=1e-3)
    # a single image (H, W, C) works too
    np.testing.assert_allclose(transform(x[0]), got[0])


@pytest.mark.parametrize("shape", [(4, 128, 128, 3), (2, 7, 5, 3), (2, 6, 9, 1)])
def test_torch_spectrum_equals_numpy_transform(shape):
    x = random_images(shape, seed=1)
    got = log_fft(torch.from_numpy(x))  # (N, C, H, W), float32
    assert got.shape == (shape[0], shape[3], shape[1], shape[2]) and got.dtype == torch.float32
    expected = transform(x)
    got = got.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-5)
    # in magnitudes, to float32 precision relative to the largest coefficient
    magnitude = np.exp(expected)
    np.testing.assert_allclose(np.exp(got), magnitude, rtol=1e-5, atol=1e-6 * magnitude.max())


def numpy_dct2(x):
    """The orthonormal DCT-II written out as its defining double sum (…, H, W)."""
    h, w = x.shape[-2:]
    i, k = np.arange(h), np.arange(h)
    j, m = np.arange(w), np.arange(w)
    cos_h = np.cos(np.pi * (2 * i[None, :] + 1) * k[:, None] / (2 * h))  # (k, i)
    cos_w = np.cos(np.pi * (2 * j[None, :] + 1) * m[:, None] / (2 * w))  # (m, j)
    scale_h = np.where(k == 0, np.sqrt(1 / h), np.sqrt(2 / h))
    scale_w = np.where(m == 0, np.sqrt(1 / w), np.sqrt(2 / w))
    out = np.einsum("ki,mj,...ij->...km", cos_h, cos_w, x)
    return out * scale_h[:, None] * scale_w[None, :]


def test_dct_is_orthonormal_dct_ii():
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 6))
    got = dct2(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, numpy_dct2(x), atol=1e-12)
    d = dct_matrix(16, torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(16, dtype=torch.float64))
    # orthonormal: energy is preserved; a constant image has only the zero-frequency coefficient
    np.testing.assert_allclose((got**2).sum(axis=(-2, -1)), (x**2).sum(axis=(-2, -1)))
    flat = dct2(torch.full((8, 8), 3.0, dtype=torch.float64))
    assert flat[0, 0].item() == pytest.approx(24.0) and flat.flatten()[1:].abs().max() < 1e-12
    images = random_images((2, 16, 16, 3))
    # compared as magnitudes: the log of a coefficient near zero magnifies float32 rounding
    magnitude = np.abs(numpy_dct2(images.transpose(0, 3, 1, 2).astype(np.float64))) + EPS
    got = np.exp(log_dct(torch.from_numpy(images)).numpy())
    np.testing.assert_allclose(got, magnitude, rtol=1e-4, atol=1e-6 * magnitude.max())


def test_dct_matches_scipy():
    x = np.random.default_rng(3).standard_normal((3, 10, 12))
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_welford_equals_numpy_mean_and_std():
    rng = np.random.default_rng(4)
    # a large offset and small spread: the naive sum-of-squares formula would lose most digits here
    data = 1e4 + rng.standard_normal((257, 3, 5, 4)) * rng.uniform(0.01, 10, (3, 5, 4))
    estimator = WelfordEstimator()
    for part in np.split(data, [1, 2, 50, 51, 200]):  # uneven batches, including single samples
        estimator.update(torch.from_numpy(part))
    mean, std = estimator.finalize()
    assert estimator.count == 257 and mean.shape == (3, 5, 4)
    np.testing.assert_allclose(mean.numpy(), data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), data.std(axis=0), rtol=1e-9)
    # float32 batches, like the spectra: the batch statistics in float32, the running ones in float64
    spectra = (8 + 2 * rng.standard_normal((300, 3, 6, 6))).astype(np.float32)
    estimator = WelfordEstimator()
    for part in np.split(spectra, [100, 237]):
        estimator.update(torch.from_numpy(part))
    mean, std = estimator.finalize()
    np.testing.assert_allclose(mean.numpy(), spectra.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), spectra.astype(np.float64).std(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="no data"):
        WelfordEstimator().finalize()


def test_streamed_statistics_equal_numpy_over_a_split():
    images = torch.from_numpy(random_images((37, 16, 16, 3), seed=5))
    labels = torch.tensor([0, 1] * 18 + [1])
    spectra = transform(images.numpy()).transpose(0, 3, 1, 2)  # (N, C, H, W)
    mean, std = standardisation(images, "fft", torch.device("cpu"), batch_size=8)
    np.testing.assert_allclose(mean.numpy(), spectra.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), spectra.std(axis=0), atol=1e-4)
    means = class_means(images, labels, "fft", torch.device("cpu"), batch_size=8)
    np.testing.assert_allclose(means[0].numpy(), spectra[labels.numpy() == 0].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(means[1].numpy(), spectra[labels.numpy() == 1].mean(axis=0), atol=1e-5)


def test_linear_detector_standardises_then_applies_one_linear_layer():
    mean, std = torch.randn(3, 128, 128), torch.rand(3, 128, 128) + 0.5
    model = LinearDetector(mean, std)
    assert [type(m).__name__ for m in model.children()] == ["Linear"]
    assert model.dense.in_features == 3 * 128 * 128 and model.dense.out_features == 2
    x = torch.randn(4, 3, 128, 128)
    expected = ((x - mean) / std).flatten(1) @ model.dense.weight.T + model.dense.bias
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    maps = model.weight_maps()
    assert maps.shape == (2, 3, 128, 128)
    torch.testing.assert_close(maps[1, 2, 5, 7], model.dense.weight[1, 2 * 128 * 128 + 5 * 128 + 7])


def test_evaluate_counts_the_confusion_matrix():
    class Fixed(torch.nn.Module):
        def forward(self, features):  # predicts "fake" when the mean pixel is above 100
            return torch.stack([torch.zeros(len(features)), features.mean(dim=(1, 2, 3)) - 100], dim=1)

    images = torch.zeros(5, 4, 4, 3, dtype=torch.uint8)
    images[[1, 3, 4]] = 200
    labels = torch.tensor([0, 0, 1, 1, 1])
    accuracy, confusion = evaluate(Fixed(), images, labels, "pixel", torch.device("cpu"), batch_size=2)
    assert confusion.tolist() == [[1, 1], [1, 2]]
    assert accuracy == pytest.approx(3 / 5)


def test_radial_profile_of_a_known_spectrum():
    fy, fx = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
    freq, profile = radial_profile(np.hypot(fy, fx))
    assert freq[0] == 0 and freq[1] == pytest.approx(1 / 32)
    np.testing.assert_allclose(profile, freq, atol=0.5 / 32)  # each ring's mean radius is its own


def test_decoding_is_exact_and_independent_of_workers(tmp_path):
    arrays = random_images((9, 128, 128, 3), seed=6)
    files = save_pngs(tmp_path, arrays)
    one = decode_images(files, workers=1)
    assert one.dtype == torch.uint8 and one.shape == (9, 128, 128, 3)
    np.testing.assert_array_equal(one.numpy(), arrays)
    assert torch.equal(decode_images(files, workers=3), one)


def test_a_wrong_image_is_named(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(random_images((64, 64, 3))).save(path)
    with pytest.raises(util.UserError, match=r"small.png is 64x64 pixels, not 128x128"):
        read_image(path)
    path.write_bytes(b"not a png")
    with pytest.raises(util.UserError, match=r"small.png is not a readable image"):
        read_image(path)


def test_end_to_end_writes_every_figure_and_says_stand_in(full_run):
    args, results, log = full_run
    for name in FIGURES:
        path = args.out / name
        assert path.exists(), name
        with Image.open(path) as image:
            assert image.size[0] > 500 and image.size[1] > 300
    assert "SYNTHETIC STAND-IN" in log and "STAND-IN DATA, not FFHQ/StyleGAN" in log
    assert "test accuracy" in log and "validation accuracy" in log and "true fake" in log
    assert set(results) == {"fft", "dct", "pixel"}
    for r in results.values():
        assert r["confusion"].sum() == 2 * 30


def test_the_spectral_classifier_beats_chance_by_far(full_run):
    _, results, _ = full_run
    # 60 balanced test images: chance is 50%, 85% lies more than five standard deviations above it
    assert results["fft"]["test_accuracy"] >= 0.85, results["fft"]["test_accuracy"]
    assert results["dct"]["test_accuracy"] >= 0.85, results["dct"]["test_accuracy"]


def test_the_weights_show_where_the_classes_differ(full_run):
    _, results, _ = full_run
    # the decisive weights (fake minus real) lean the way the classes' standardised spectra differ
    model = results["fft"]["model"]
    decision = (model.weight_maps()[1] - model.weight_maps()[0]).flatten()
    means = results["fft"]["means"]  # (2, C, H, W) over the validation split
    gap = ((means[1] - means[0]) / model.std).flatten().float()
    correlation = torch.corrcoef(torch.stack([decision, gap]))[0, 1].item()
    assert correlation > 0.3, correlation


def test_sizes_larger_than_the_folder_are_refused(standin):
    with pytest.raises(util.UserError, match=r"holds 120 usable images, fewer than the 200 asked for"):
        load_splits(standin, 150, 25, 25, workers=1)


def test_missing_default_data_names_both_commands(tmp_path):
    with pytest.raises(util.UserError) as error:
        check_data_folder(tmp_path / "nothing")
    assert "python src/util.py ffhq-download" in str(error.value)
    assert "python src/util.py ffhq-standin" in str(error.value)
    (tmp_path / "half" / util.REAL_FOLDER).mkdir(parents=True)
    with pytest.raises(util.UserError, match=r"has no B_stylegan/ folder"):
        check_data_folder(tmp_path / "half")


def test_command_line_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(util.ROOT / "src" / "deepfake_interpretation.py"), "--data", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: no image folder at")
    assert "ffhq-download" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_image_fails_the_run_with_its_name(tmp_path):
    # header and end marker intact (load_folder's check passes), compressed pixels destroyed
    arrays = random_images((40, 128, 128, 3), seed=7)
    files = save_pngs(tmp_path, arrays)
    data = bytearray(files[33].read_bytes())
    data[200:5000] = bytes(4800)
    files[33].write_bytes(bytes(data))
    assert util.png_problem(files[33]) is None
    with pytest.raises(util.UserError, match=r"33.png is not a readable image"):
        decode_images(files, workers=2)
