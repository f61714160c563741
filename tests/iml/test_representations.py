"""src/iml/representations.py (`python -m iml deepfake-representations`): the exercise's detector on log FFT,
log DCT and raw pixels in turn, on stand-in data, with its figures, its table and its command line."""

import contextlib
import io
import re

import pytest
import torch
from conftest import FUZZ, argparse_error, argument_lists, raises_explained, run_cli
from hypothesis import example, given
from PIL import Image

import util
from iml import cli, representations
from iml.detector import LinearDetector
from iml.representations import build_parser, run
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


def test_the_default_is_the_exercises_split_on_all_three_representations():
    args = build_parser().parse_args([])
    assert (args.train_size, args.val_size, args.test_size) == util.FFHQ_SPLIT
    assert args.representation == "all" and args.data == util.FFHQ_SOURCE_DIR


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
    # the decisive weights (fake minus real) lean the way the classes' standardized spectra differ
    model = results["fft"]["model"]
    decision = (model.weight_maps()[1] - model.weight_maps()[0]).flatten()
    means = results["fft"]["means"]  # (2, C, H, W) over the validation split
    gap = ((means[1] - means[0]) / model.std).flatten().float()
    correlation = torch.corrcoef(torch.stack([decision, gap]))[0, 1].item()
    assert correlation > 0.3, correlation


def test_the_options_of_the_study_are_not_the_commands(capsys):
    # they were --resampling-study's on the old script; now `python -m iml resampling-study` has them
    for flag in ("--real", "--fake", "--allow-upscale", "--resampling-study"):
        assert "unrecognized arguments" in argparse_error(build_parser(), [flag, "x"], capsys)


def test_nan_during_training_stops_the_run(standin, tmp_path, monkeypatch):
    forward = LinearDetector.forward
    calls = []

    def blows_up(self, x):
        calls.append(1)
        out = forward(self, x)
        return out * float("nan") if len(calls) > 2 else out

    monkeypatch.setattr(LinearDetector, "forward", blows_up)
    argv = ["--data", str(standin), "--out", str(tmp_path), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "3", "--batch-size", "4"]
    with raises_explained(r"^training diverged: the loss became nan; lower --lr and run again\.$", cli.UserError):
        representations.main([*argv, "--representation", "fft"])


class Command:
    """`python -m iml deepfake-representations` as conftest.run_cli calls a script's main()."""

    @staticmethod
    def main():
        import sys

        representations.main(sys.argv[1:])


@FUZZ
@example(argv=[])
@example(argv=["--weight-decay", "1e-3"])
@example(argv=["--representation", "pixel"])
@given(argv=argument_lists(build_parser(), {"--data", "--out", "--workers"}))
def test_fuzz_representations_command_line(argv, standin, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--data", str(standin), "--out", str(out), "--workers", "1"]
    prefix += ["--train-size", "8", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    outcome = run_cli(Command, prefix + argv, monkeypatch, script="iml")
    if argv in ([], ["--weight-decay", "1e-3"], ["--representation", "pixel"]):
        assert outcome == "ran" and list(out.glob("*.png"))
