"""src/deepfake_interpretation.py (Task 3): the exercise's spectrum, the mean spectra and their difference,
the single nn.Linear classifier, its training and accuracy, the figures, the command line, and that the
fast twin (`--fast`, src/iml/detector.py) equals the exercise's path. The twin's own pieces are tested in
tests/iml/test_detector.py, the other representations in test_representations.py, the study in
test_resampling_study.py."""

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
)
from hypothesis import example, given
from PIL import Image

import deepfake_interpretation
import util
from deepfake_interpretation import build_parser, detect, evaluate, mean_spectra, run, transform
from iml import cli
from iml.detector import WEIGHT_DECAY, fit_fast
from iml.spectra import EPS, log_fft
from iml.standin import make_standin

PER_CLASS = 60
SIZES = ["--train-size", "40", "--val-size", "8", "--test-size", "12"]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A tiny stand-in dataset: PER_CLASS synthetic 'real' and 'fake' 128x128 PNGs."""
    return make_standin(tmp_path_factory.mktemp("ffhq") / "standin", per_class=PER_CLASS, seed=0, workers=2)


def arguments(standin, out, *extra):
    return build_parser().parse_args(
        ["--data", str(standin), *SIZES, "--out", str(out), "--device", "cpu", "--workers", "2", *extra]
    )


@pytest.fixture(scope="module")
def default_run(standin, tmp_path_factory):
    """One run as `python src/deepfake_interpretation.py` runs, on the stand-in: (args, result, log, transform calls)."""
    args = arguments(standin, tmp_path_factory.mktemp("figures"))
    calls = []
    original = deepfake_interpretation.transform

    def counted(image_data, *rest):
        calls.append(np.shape(image_data))
        return original(image_data, *rest)

    log = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(log):
        patch.setattr(deepfake_interpretation, "transform", counted)
        result = run(args)
    return args, result, log.getvalue(), calls


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


def test_mean_spectra_and_their_difference_fake_minus_real():
    spectra = torch.rand(5, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1, 1])
    means, difference = mean_spectra(spectra, labels)
    assert means.shape == (2, 3, 4, 6) and means.dtype == torch.float64 and difference.shape == (3, 4, 6)
    torch.testing.assert_close(means[0], spectra[[0, 2]].double().mean(dim=0))
    torch.testing.assert_close(means[1], spectra[[1, 3, 4]].double().mean(dim=0))
    assert torch.equal(difference, means[1] - means[0])


def test_evaluate_counts_the_confusion_matrix():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # "fake" when the first input is above 0
        model.bias.zero_()
    x = torch.tensor([[-1.0, 0], [1, 0], [-1, 0], [1, 0], [1, 0]])
    accuracy, confusion = evaluate(model, x, torch.tensor([0, 0, 1, 1, 1]))
    assert confusion.tolist() == [[1, 1], [1, 2]]
    assert accuracy == pytest.approx(3 / 5)


# ------------------------------------------------------------------ the default run


def test_the_default_run_transforms_every_image_with_the_exercises_function(default_run):
    args, _, _, calls = default_run
    assert sum(shape[0] for shape in calls) == 2 * (40 + 8 + 12)  # every image of the split, once
    assert {shape[1:] for shape in calls} == {(128, 128, 3)}  # in batches (N, H, W, C)


def test_the_classifier_is_one_linear_layer_whose_weights_have_the_images_shape(default_run, standin):
    _, result, _, _ = default_run
    assert result["weights"].shape == (2, 3, 128, 128)
    assert result["means"].shape == (2, 3, 128, 128) and torch.equal(
        result["difference"], result["means"][1] - result["means"][0]
    )
    # the mean spectra are those of `transform` over the validation split
    real_val = util.load_folder(standin / util.REAL_FOLDER, 40, 8, 12)[1]
    expected = np.mean([transform(util.read_rgb(path)) for path in real_val], axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(result["means"][0].numpy(), expected, rtol=1e-6)


def test_the_default_run_prints_what_the_sheet_asks_and_names_the_commands_beyond(default_run):
    args, result, log, _ = default_run
    assert "SYNTHETIC STAND-IN" in log and "true fake" in log
    epochs = re.findall(r"^epoch (\d): training loss \d+\.\d{4}, validation accuracy \d+\.\d\d%$", log, re.MULTILINE)
    assert epochs == ["1", "2", "3", "4", "5"]
    assert re.search(r"^training accuracy \d+\.\d\d% on 80 images$", log, re.MULTILINE), log
    test = re.search(r"^test accuracy (\d+\.\d\d)% \(95 % interval [\d.]+%-[\d.]+%\) on 24 images$", log, re.MULTILINE)
    assert test and float(test.group(1)) >= 85, log  # chance is 50 %
    assert log.rstrip().splitlines()[-1] == (
        "further: `python -m iml deepfake-representations`; `python -m iml resampling-study --real DIR --fake DIR`"
    )
    for name in ("deepfake_spectra.png", "deepfake_weights.png"):
        assert f"wrote {args.out / name}" in log or f"wrote {name}" in log or name in log
        with Image.open(args.out / name) as image:
            assert image.size[0] > 1000 and image.size[1] > 400


def test_the_weights_show_where_the_classes_differ(default_run):
    _, result, _, _ = default_run
    decision = (result["weights"][1] - result["weights"][0]).flatten()
    gap = result["difference"].flatten().float()
    # standardization rescales each coefficient, but the sign of the gap and of the decision agree broadly
    assert torch.corrcoef(torch.stack([decision, gap]))[0, 1] > 0.3


# ------------------------------------------------------------------ the fast twin equals the exercise


@pytest.mark.parametrize("shape", [(4, 128, 128, 3), (2, 7, 5, 3), (1, 128, 128, 1)])
def test_the_twins_spectra_equal_transform_to_float32_precision(shape):
    x = random_images(shape, seed=2)
    twin = log_fft(torch.from_numpy(x)).permute(0, 2, 3, 1).numpy()  # (N, H, W, C) float32
    np.testing.assert_allclose(twin, transform(x), atol=2e-4, rtol=1e-5)


def test_the_twin_reaches_the_same_accuracy_on_the_same_split_and_seed(standin, tmp_path, capsys):
    args = arguments(standin, tmp_path)
    exercise = detect(argparse.Namespace(**{**vars(args), "data": str(args.data)}), torch.device("cpu"))  # a str
    twin = fit_fast(args, "cpu")  # a device by name
    capsys.readouterr()
    # the same initial weights and batches; the two differ by float32 rounding only (numpy float64
    # spectra against torch float32, standardization applied to the data or folded into the weights),
    # so at most one image near the boundary may change sides: 1 of 24 test images
    assert (exercise["test"] - twin["test"]).abs().sum() <= 2
    assert (exercise["train"] - twin["train"]).abs().sum() <= 2
    torch.testing.assert_close(twin["weights"], exercise["weights"], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(twin["means"], exercise["means"], atol=1e-4, rtol=1e-5)


# ------------------------------------------------------------------ the command line


def test_the_default_split_fits_a_minute_and_the_help_names_the_full_one(capsys):
    args = build_parser().parse_args([])
    assert (args.train_size, args.val_size, args.test_size) == (500, 100, 200)
    assert args.data == util.FFHQ_SOURCE_DIR and not args.fast and args.eval_split == "val"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "67000 / 1000 / 2000" in capsys.readouterr().out


def test_weight_decay_on_the_command_line(capsys):
    assert build_parser().parse_args([]).weight_decay == WEIGHT_DECAY
    assert build_parser().parse_args(["--weight-decay", "0"]).weight_decay == 0.0
    assert build_parser().parse_args(["--weight-decay", "0.01"]).weight_decay == 0.01
    for bad in ("-0.1", "nan", "inf", "1e38", "x"):
        assert "argument --weight-decay: " in argparse_error(build_parser(), ["--weight-decay", bad], capsys)


def test_the_study_and_the_representations_are_iml_commands_now(capsys):
    for flag in ("--resampling-study", "--real", "--representation"):
        assert "unrecognized arguments" in argparse_error(build_parser(), [flag, "x"], capsys)


def test_command_line_error_is_one_line(tmp_path):
    result = run_script("deepfake_interpretation.py", "--data", tmp_path / "missing", "--out", tmp_path / "out")
    assert_clear_error(result, "ffhq-download")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: no image folder at")
    assert not (tmp_path / "out").exists()


def test_the_output_folder_is_checked_before_any_work(standin, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["deepfake_interpretation.py", "--data", str(standin)])
    monkeypatch.setattr(deepfake_interpretation, "detect", lambda *a: pytest.fail("worked before the check"))
    with raises_explained(r"lies inside --data .*, where its files would be read as data", cli.UserError):
        run(build_parser().parse_args(["--data", str(standin), "--out", str(standin / "figures")]))


def test_a_bad_image_is_named_or_skipped(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    make_standin(data, per_class=10, seed=0, workers=1)
    Image.new("L", (128, 128)).save(data / util.REAL_FOLDER / "gray.png")
    argv = ["deepfake_interpretation.py", "--data", str(data), "--out", str(tmp_path / "figures"), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    for fast in ([], ["--fast"]):
        args = build_parser().parse_args([*argv[1:], *fast])
        with raises_explained(
            r"1 of 11 files in .*A_ffhq are not 128x128 RGB PNG images: gray.png .*\(--skip-unreadable on the "
            r"command line\)"
        ):
            run(args)
        assert not (tmp_path / "figures").exists()
    run(build_parser().parse_args([*argv[1:], "--skip-unreadable"]))
    assert "warning: skipped 1 of 11 files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "figures").glob("deepfake_*.png")) == [
        "deepfake_spectra.png",
        "deepfake_weights.png",
    ]


@pytest.mark.parametrize("fast", [[], ["--fast"]])
def test_nan_during_training_stops_the_run(standin, tmp_path, monkeypatch, fast):
    cross_entropy = torch.nn.functional.cross_entropy
    calls = []

    def blows_up(*args, **kwargs):
        calls.append(1)
        loss = cross_entropy(*args, **kwargs)
        return loss * float("nan") if len(calls) > 2 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", blows_up)
    from iml import detector

    monkeypatch.setattr(detector.F, "cross_entropy", blows_up)
    argv = ["deepfake_interpretation.py", "--data", str(standin), "--out", str(tmp_path), "--workers", "1"]
    argv += ["--train-size", "6", "--val-size", "2", "--test-size", "2", "--epochs", "3", "--batch-size", "4", *fast]
    monkeypatch.setattr(sys, "argv", argv)
    with raises_explained(r"^training diverged: the loss became nan; lower --lr and run again\.$", cli.UserError):
        run(build_parser().parse_args(argv[1:]))


@FUZZ
@example(argv=[])
@example(argv=["--weight-decay", "1e-3"])
@example(argv=["--fast"])
@example(argv=["--real", "x"])
@given(argv=argument_lists(deepfake_interpretation.build_parser(), {"--data", "--out", "--workers"}))
def test_fuzz_deepfake_command_line(argv, standin, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--data", str(standin), "--out", str(out), "--workers", "1"]
    prefix += ["--train-size", "8", "--val-size", "2", "--test-size", "2", "--epochs", "1"]
    outcome = run_cli(deepfake_interpretation, prefix + argv, monkeypatch)
    if argv in ([], ["--weight-decay", "1e-3"], ["--fast"]):
        assert outcome == "ran" and list(out.glob("*.png"))
    if "--real" in argv:
        assert outcome == "argparse"  # the study's options belong to `python -m iml resampling-study`
