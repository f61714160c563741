"""src/iml/detector.py: the fast twin's linear detector, its streamed statistics, training and evaluation,
the Wilson interval and the accuracy line. That the twin equals the exercise's path is tested in
tests/test_deepfake_interpretation.py."""

import argparse
import re

import numpy as np
import pytest
import torch
from conftest import argparse_error, random_images, write_png

from deepfake_interpretation import transform
from iml.deepfake_plots import describe_data
from iml.detector import (
    WEIGHT_DECAY,
    LinearDetector,
    add_training_arguments,
    class_means,
    evaluate,
    fit_detector,
    format_accuracy,
    wilson_interval,
)
from iml.face_cache import load_splits
from iml.ffhq_import import import_faces
from iml.spectra import standardization
from iml.standin import make_standin


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A tiny stand-in dataset: 30 synthetic 'real' and 'fake' 128x128 PNGs."""
    return make_standin(tmp_path_factory.mktemp("ffhq") / "standin", per_class=30, seed=0, workers=1)


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
    refusals = {
        (0, 0): "wilson_interval needs total as a whole number from 1 up (an int), got 0",
        (1, 0): "wilson_interval needs total as a whole number from 1 up (an int), got 0",
        (-1, 5): "wilson_interval needs correct as a whole number from 0 up (an int), got -1",
        (6, 5): "wilson_interval needs correct from 0 to total, got 6 of 5",
    }
    for (correct, total), message in refusals.items():
        with pytest.raises(ValueError) as info:
            wilson_interval(correct, total)
        assert str(info.value) == message
    for correct, total, message in [
        (0.5, 1, "wilson_interval needs correct as a whole number from 0 up (an int), got the float 0.5"),
        (1, "60", "wilson_interval needs total as a whole number from 1 up (an int), got the string '60'"),
        (True, 2, "wilson_interval needs correct as a whole number from 0 up (an int), got the bool True"),
    ]:
        with pytest.raises(TypeError) as info:
            wilson_interval(correct, total)
        assert str(info.value) == message
    assert wilson_interval(np.int64(57), np.int64(60)) == wilson_interval(57, 60)  # counts from numpy or .item()


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
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    assert parser.parse_args([]).weight_decay == WEIGHT_DECAY == 30.0
    assert parser.parse_args(["--weight-decay", "0"]).weight_decay == 0.0
    assert parser.parse_args(["--weight-decay", "0.01"]).weight_decay == 0.01
    for bad in ("-0.1", "nan", "inf", "1e38", "x"):
        assert "argument --weight-decay: " in argparse_error(parser, ["--weight-decay", bad], capsys)


def test_imported_data_is_described_by_its_filters(tmp_path):
    for label in ("real", "fake"):
        for i in range(2):
            write_png(tmp_path / label / f"{i}.png", seed=i + (label == "fake") * 10)
    data = tmp_path / "data"
    import_faces(tmp_path / "real", tmp_path / "fake", data, real_resample="nearest", fake_resample="box", workers=1)
    assert describe_data(data, "val", 2000) == "2,000 validation images, imported (reals by nearest, fakes by box)"
    (data / "MANIFEST.csv").unlink()
    assert describe_data(data, "test", 5) == "5 test images, FFHQ vs StyleGAN"
