"""src/deepfake_interpretation.py (Task 3): the exercise's spectrum, the linear detector, decoding the
images, streamed statistics, the whole run on stand-in data, and the command line."""

import contextlib
import io
import sys

import numpy as np
import pytest
import torch
from conftest import (
    FUZZ,
    argument_lists,
    assert_clear_error,
    raises_explained,
    random_images,
    run_cli,
    run_script,
    save_pngs,
)
from hypothesis import example, given
from PIL import Image

import cli
import deepfake_interpretation
import util
from common import InputError
from deepfake_interpretation import (
    LinearDetector,
    build_parser,
    check_data_folder,
    class_means,
    decode_images,
    evaluate,
    load_splits,
    mean_difference,
    run,
    standardisation,
    transform,
)
from spectra import EPS
from standin import make_standin

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


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A tiny stand-in dataset: PER_CLASS synthetic 'real' and 'fake' 128x128 PNGs."""
    return make_standin(tmp_path_factory.mktemp("ffhq") / "standin", per_class=PER_CLASS, seed=0, workers=2)


@pytest.fixture(scope="module")
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


# ------------------------------------------------------------------ the exercise's pieces


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


def test_mean_difference_is_the_fakes_mean_minus_the_reals():
    means = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    difference = mean_difference(means)
    assert difference.shape == (3, 5, 4)
    assert torch.equal(difference, means[1] - means[0])


def test_linear_detector_standardises_then_applies_one_linear_layer():
    mean, std = torch.randn(3, 128, 128), torch.rand(3, 128, 128) + 0.5
    model = LinearDetector(mean, std)
    assert [type(m).__name__ for m in model.children()] == ["Linear"]
    assert not hasattr(model, "dense")  # the layer is `.linear`, as in the exercise's wording
    assert model.linear.in_features == 3 * 128 * 128 and model.linear.out_features == 2
    x = torch.randn(4, 3, 128, 128)
    expected = ((x - mean) / std).flatten(1) @ model.linear.weight.T + model.linear.bias
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    maps = model.weight_maps()
    assert maps.shape == (2, 3, 128, 128)
    torch.testing.assert_close(maps[1, 2, 5, 7], model.linear.weight[1, 2 * 128 * 128 + 5 * 128 + 7])


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


# ------------------------------------------------------------------ decoding


def test_decoding_is_exact_and_independent_of_workers(tmp_path):
    arrays = random_images((9, 128, 128, 3), seed=6)
    files = save_pngs(tmp_path, arrays)
    one = decode_images(files, workers=1)
    assert one.dtype == torch.uint8 and one.shape == (9, 128, 128, 3)
    np.testing.assert_array_equal(one.numpy(), arrays)
    assert torch.equal(decode_images(files, workers=3), one)


def test_a_damaged_image_fails_the_run_with_its_name(tmp_path):
    # header and end marker intact (load_folder's check passes), compressed pixels destroyed
    arrays = random_images((40, 128, 128, 3), seed=7)
    files = save_pngs(tmp_path, arrays)
    data = bytearray(files[33].read_bytes())
    data[200:5000] = bytes(4800)
    files[33].write_bytes(bytes(data))
    assert util.png_problem(files[33]) is None
    with pytest.raises(InputError, match=r"33.png is not a readable image"):
        decode_images(files, workers=2)


def test_a_decoded_image_of_the_wrong_size_is_named(tmp_path):
    (path,) = save_pngs(tmp_path, [random_images((64, 64, 3))])
    with pytest.raises(InputError, match=r"00.png is 64x64 pixels, not 128x128"):
        decode_images([path], workers=1)


# ------------------------------------------------------------------ the whole run


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
    with raises_explained(r"holds 120 usable images, fewer than the 200 asked for"):
        load_splits(standin, 150, 25, 25, workers=1)


def test_missing_default_data_names_both_commands(tmp_path):
    with pytest.raises(InputError) as error:
        check_data_folder(tmp_path / "nothing")
    assert "python src/util.py ffhq-download" in cli.user_message(error.value)
    assert "python src/util.py ffhq-standin" in cli.user_message(error.value)
    (tmp_path / "half" / util.REAL_FOLDER).mkdir(parents=True)
    with raises_explained(r"has no B_stylegan/ folder"):
        check_data_folder(tmp_path / "half")


def test_command_line_error_is_one_line(tmp_path):
    result = run_script("deepfake_interpretation.py", "--data", tmp_path / "missing")
    assert_clear_error(result, "ffhq-download")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: no image folder at")


def test_a_bad_image_is_named_or_skipped(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    make_standin(data, per_class=10, seed=0, workers=1)
    Image.new("L", (128, 128)).save(data / util.REAL_FOLDER / "gray.png")
    argv = ["deepfake_interpretation.py", "--data", str(data), "--out", str(tmp_path / "figures"), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "1", "--representation", "fft"]
    monkeypatch.setattr(sys, "argv", argv)
    with raises_explained(
        r"1 of 11 files in .*A_ffhq are not 128x128 RGB PNG images: gray.png .*\(--skip-unreadable on the command line\)"
    ):
        deepfake_interpretation.main()
    assert not (tmp_path / "figures").exists()
    monkeypatch.setattr(sys, "argv", [*argv, "--skip-unreadable"])
    deepfake_interpretation.main()
    assert "warning: skipped 1 of 11 files" in capsys.readouterr().err
    assert list((tmp_path / "figures").glob("deepfake_*.png"))


def test_nan_during_training_stops_the_run(standin, tmp_path, monkeypatch):
    forward = LinearDetector.forward
    calls = []

    def blows_up(self, x):
        calls.append(1)
        out = forward(self, x)
        return out * float("nan") if len(calls) > 2 else out

    monkeypatch.setattr(LinearDetector, "forward", blows_up)
    argv = ["deepfake_interpretation.py", "--data", str(standin), "--out", str(tmp_path), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "3", "--batch-size", "4"]
    argv += ["--representation", "fft"]
    monkeypatch.setattr(sys, "argv", argv)
    with raises_explained(r"^training diverged: the loss became nan; lower --lr and run again\.$", cli.UserError):
        deepfake_interpretation.main()


@FUZZ
@example(argv=[])
@given(argv=argument_lists(deepfake_interpretation.build_parser(), {"--data", "--out", "--workers"}))
def test_fuzz_deepfake_command_line(argv, standin, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--data", str(standin), "--out", str(out), "--workers", "1"]
    prefix += ["--train-size", "8", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    outcome = run_cli(deepfake_interpretation, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and list(out.glob("*.png"))
