"""src/deepfake_interpretation.py (Task 3): the exercise's spectrum, the linear detector, streamed
statistics, the Wilson interval, the whole run on stand-in data, and the command line. Decoding and
splitting the images is tested in test_face_cache.py, the resampling study in test_resampling_study.py."""

import argparse
import contextlib
import io
import re
import sys

import numpy as np
import pytest
import torch
from conftest import (
    FUZZ,
    argparse_error,
    argument_lists,
    assert_clear_error,
    raises_explained,
    random_images,
    run_cli,
    run_script,
    write_png,
)
from hypothesis import example, given
from PIL import Image

import deepfake_interpretation
import util
from deepfake_interpretation import (
    STUDY_SPLIT,
    LinearDetector,
    build_parser,
    class_means,
    describe_data,
    evaluate,
    fit_detector,
    format_accuracy,
    mean_difference,
    run,
    transform,
    wilson_interval,
)
from iml import cli
from iml.face_cache import load_splits
from iml.ffhq_import import import_faces
from iml.spectra import EPS, standardization
from iml.standin import make_standin

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


def test_linear_detector_standardizes_then_applies_one_linear_layer():
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
    mean, std = standardization(images, "fft", torch.device("cpu"), batch_size=8)
    np.testing.assert_allclose(mean.numpy(), spectra.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), spectra.std(axis=0), atol=1e-4)
    means = class_means(images, labels, "fft", torch.device("cpu"), batch_size=8)
    np.testing.assert_allclose(means[0].numpy(), spectra[labels.numpy() == 0].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(means[1].numpy(), spectra[labels.numpy() == 1].mean(axis=0), atol=1e-5)


# ------------------------------------------------------------------ how sure an accuracy is


@pytest.mark.parametrize(
    ("correct", "total"), [(0, 1), (1, 1), (0, 60), (60, 60), (57, 60), (30, 60), (1, 2), (7, 13), (1999, 2000)]
)
def test_wilson_interval_agrees_with_scipy(correct, total):
    from scipy.stats import binomtest

    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(correct, total)
    assert low == pytest.approx(expected.low, abs=1e-6) and high == pytest.approx(expected.high, abs=1e-6)
    assert 0 <= low <= correct / total <= high <= 1
    assert low < high  # never empty, even at 0 or all correct


def test_wilson_interval_of_a_perfect_score_and_of_nothing():
    low, high = wilson_interval(60, 60)
    assert low == pytest.approx(0.940, abs=5e-4) and high == 1.0
    low, high = wilson_interval(0, 60)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.060, abs=5e-4)
    # more images, a narrower interval around the same proportion
    assert np.diff(wilson_interval(900, 1000)) < np.diff(wilson_interval(90, 100)) < np.diff(wilson_interval(9, 10))
    for correct, total in [(0, 0), (1, 0), (-1, 5), (6, 5)]:
        with pytest.raises(ValueError, match=r"need 0 <= correct <= total and total >= 1"):
            wilson_interval(correct, total)


def test_format_accuracy_names_the_accuracy_its_interval_and_the_count():
    confusion = torch.tensor([[28, 2], [1, 29]])  # 57 of 60 right
    assert format_accuracy(confusion) == "95.00% (95 % interval 86.3%-98.3%) on 60 images"
    assert (
        format_accuracy(torch.tensor([[1000, 0], [0, 1000]])) == "100.00% (95 % interval 99.8%-100.0%) on 2,000 images"
    )
    assert format_accuracy(confusion, interval=False) == "95.00% on 60 images"


# ------------------------------------------------------------------ training


def training_settings(**changes):
    return argparse.Namespace(**{"lr": 1e-3, "weight_decay": 0.0, "epochs": 3, "batch_size": 20, "seed": 0, **changes})


@pytest.fixture(scope="module")
def small_splits(standin):
    return load_splits(standin, 20, 5, 5, workers=1)


def test_fit_detector_logs_each_epoch_and_repeats_itself(small_splits):
    lines = []
    model, val_accuracy = fit_detector(training_settings(), small_splits, "fft", torch.device("cpu"), log=lines.append)
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        assert re.fullmatch(rf"fft: epoch {epoch}: training loss \d+\.\d{{4}}, validation accuracy \d+\.\d\d%", line)
    assert lines[-1].endswith(f"{val_accuracy:.2%}")
    again, _ = fit_detector(training_settings(), small_splits, "fft", torch.device("cpu"), log=lambda line: None)
    assert torch.equal(model.linear.weight, again.linear.weight)  # same seed, same detector


def test_weight_decay_keeps_the_weights_small(small_splits):
    cpu = torch.device("cpu")
    free, _ = fit_detector(training_settings(epochs=5, batch_size=10), small_splits, "fft", cpu, log=lambda line: None)
    decayed, _ = fit_detector(
        training_settings(epochs=5, batch_size=10, weight_decay=10.0), small_splits, "fft", cpu, log=lambda line: None
    )
    # measured: 0.34 against 1.84
    assert decayed.linear.weight.norm() < 0.5 * free.linear.weight.norm()


def test_weight_decay_on_the_command_line(capsys):
    assert build_parser().parse_args([]).weight_decay == deepfake_interpretation.WEIGHT_DECAY
    assert build_parser().parse_args(["--weight-decay", "0"]).weight_decay == 0.0
    assert build_parser().parse_args(["--weight-decay", "0.01"]).weight_decay == 0.01
    for bad in ("-0.1", "nan", "inf", "1e38", "x"):
        assert "argument --weight-decay: " in argparse_error(build_parser(), ["--weight-decay", bad], capsys)


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


@pytest.mark.parametrize("representation", ["fft", "dct", "pixel"])
def test_every_run_prints_training_and_test_accuracy_with_their_intervals(full_run, representation):
    _, results, log = full_run
    r = results[representation]
    train = re.search(rf"^{representation}: training accuracy (.*)$", log, re.MULTILINE)
    test = re.search(rf"^{representation}: test accuracy (.*)$", log, re.MULTILINE)
    assert train and test, log
    # the training split was seen in training: an interval would say nothing about it, and none is given
    assert re.fullmatch(r"\d+\.\d\d% on 160 images", train.group(1)), train.group(1)
    low, high = r["test_interval"]
    assert test.group(1) == f"{r['test_accuracy']:.2%} (95 % interval {low:.1%}-{high:.1%}) on 60 images"
    assert low <= r["test_accuracy"] <= high
    assert float(train.group(1).split("%")[0]) / 100 == pytest.approx(r["train_accuracy"], abs=5e-5)


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


def test_imported_data_is_described_by_its_filters(tmp_path):
    for label in ("real", "fake"):
        for i in range(2):
            write_png(tmp_path / label / f"{i}.png", seed=i + (label == "fake") * 10)
    data = tmp_path / "data"
    import_faces(tmp_path / "real", tmp_path / "fake", data, real_resample="nearest", fake_resample="box", workers=1)
    assert describe_data(data, "val", 2000) == "2,000 validation images, imported (reals by nearest, fakes by box)"
    (data / "MANIFEST.csv").unlink()
    assert describe_data(data, "test", 5) == "5 test images, FFHQ vs StyleGAN"


def main_arguments(monkeypatch, argv):
    """The args main() hands on for `argv`, with run and the study replaced by a recorder."""
    from iml import resampling_study

    seen = []
    monkeypatch.setattr(deepfake_interpretation, "run", seen.append)
    monkeypatch.setattr(resampling_study, "run_study", lambda args, device: seen.append(args))
    monkeypatch.setattr(sys, "argv", ["deepfake_interpretation.py", *argv])
    deepfake_interpretation.main()
    (args,) = seen
    return args


def test_main_fills_the_split_sizes_for_the_task_and_for_the_study(tmp_path, monkeypatch):
    out = ["--out", str(tmp_path / "figures")]
    args = main_arguments(monkeypatch, out)
    assert (args.train_size, args.val_size, args.test_size, args.data) == (None, None, None, None)  # run fills them
    deepfake_interpretation.fill_split_sizes(args, util.FFHQ_SPLIT)
    assert (args.train_size, args.val_size, args.test_size) == util.FFHQ_SPLIT
    study = ["--resampling-study", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake")]
    args = main_arguments(monkeypatch, [*out, *study])
    assert (args.train_size, args.val_size, args.test_size) == STUDY_SPLIT
    args = main_arguments(monkeypatch, [*out, *study, "--test-size", "40"])
    assert (args.train_size, args.val_size, args.test_size) == (STUDY_SPLIT[0], STUDY_SPLIT[1], 40)


def test_real_and_fake_belong_to_the_study(tmp_path, monkeypatch):
    argv = ["deepfake_interpretation.py", "--out", str(tmp_path / "figures")]
    monkeypatch.setattr(sys, "argv", [*argv, "--real", "x"])
    with raises_explained(
        r"^--real, --fake and --allow-upscale belong to --resampling-study; to train on other pictures, import them with "
        r"`python src/util.py ffhq-import --real DIR --fake DIR --out DIR` and pass --data DIR\.$",
        cli.UserError,
    ):
        deepfake_interpretation.main()
    for given_ in (["--real", "x"], ["--fake", "y"], []):
        monkeypatch.setattr(sys, "argv", [*argv, "--resampling-study", *given_])
        with raises_explained(
            r"^--resampling-study needs --real DIR and --fake DIR, the folders of real and fake pictures\.$",
            cli.UserError,
        ):
            deepfake_interpretation.main()
    assert not (tmp_path / "figures").exists()


def test_the_study_names_a_missing_folder_in_one_line(tmp_path):
    result = run_script(
        "deepfake_interpretation.py",
        *[
            "--resampling-study",
            "--real",
            tmp_path / "none",
            "--fake",
            tmp_path / "fake",
            "--out",
            tmp_path / "figures",
        ],
        *["--device", "cpu"],
    )
    assert_clear_error(result, "none is not a folder; give a folder of face pictures.")
    assert result.returncode == 1 and not (tmp_path / "figures").exists()


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
@example(argv=["--weight-decay", "1e-3"])
@example(argv=["--real", "x"])
@example(argv=["--resampling-study", "--fake", "x"])
@example(argv=["--resampling-study", "--real", "nowhere", "--fake", "nowhere"])
@given(argv=argument_lists(deepfake_interpretation.build_parser(), {"--data", "--out", "--workers"}))
def test_fuzz_deepfake_command_line(argv, standin, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--data", str(standin), "--out", str(out), "--workers", "1"]
    prefix += ["--train-size", "8", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    outcome = run_cli(deepfake_interpretation, prefix + argv, monkeypatch)
    if not argv or argv[0] == "--weight-decay":
        assert outcome == "ran" and list(out.glob("*.png"))
    if "--real" in argv or "--fake" in argv:
        assert outcome != "ran"  # without both folders and the study, or with folders that are not there
