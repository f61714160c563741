"""src/iml/ig_command.py: `python -m iml ig`, the IG options beyond the exercise (baselines, rules, SmoothGrad,
bfloat16, compile, chunk size), their ranges, and what a run prints and draws."""

import pytest
from conftest import FUZZ, argparse_error, argument_lists, assert_clear_error, run_cli, run_iml
from hypothesis import example, given

from iml import ig_command
from iml.common import WEIGHTS_PATH
from iml.ig_command import build_parser


def test_parser_rejects_bad_values(capsys):
    parser = build_parser()
    bad = {
        ("--digit", "10"): "must be a digit 0-9, got 10",
        ("--steps", "0"): "must be an integer from 1 to 100000, got 0",
        ("--steps", "1000000000000"): "must be an integer from 1 to 100000, got 1000000000000",
        ("--num-images", "10001"): "must be an integer from 1 to 10000, got 10001",
        ("--noise-draws", "1000000000"): "must be an integer from 1 to 1000, got 1000000000",
        ("--smoothgrad-sigma", "1e30"): "must be a number above 0 to 10, got 1e30",
        ("--rule", "simpson"): "invalid choice: 'simpson'",
        ("--baseline", "white"): "invalid choice: 'white'",
        ("--batch-points", "-1"): "must be an integer from 1 to 100000000, got -1",
        ("--num-images", "x"): "'x' is not an integer",
    }
    for arguments, message in bad.items():
        assert message in argparse_error(parser, arguments, capsys)
    args = parser.parse_args([])
    assert (args.num_images, args.steps, args.rule, args.baseline, args.digit) == (100, 300, "right", "black", None)
    assert parser.prog == "python -m iml ig" and args.weights == WEIGHTS_PATH


@pytest.mark.parametrize(("flag", "value"), [("--noise-draws", "1000000000"), ("--smoothgrad-sigma", "1e30")])
def test_out_of_range_numbers_are_argparse_errors_with_exit_2(flag, value):
    result = run_iml("ig", flag, value, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {flag}: must be" in result.stderr


def test_trapezoid_with_one_step_is_refused_before_any_work(tmp_path):
    result = run_iml("ig", "--num-images", 2, "--steps", 1, "--rule", "trapezoid", "--out", tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more.\n"
    assert not list(tmp_path.iterdir())


def test_missing_weights_name_the_script_that_trains_them(tmp_path):
    result = run_iml("ig", "--weights", tmp_path / "w.pth", "--out", tmp_path / "out")
    assert_clear_error(result, "w.pth does not exist; run `python src/mnist_integrated.py --weights", "first")


def test_a_run_reports_speed_completeness_and_the_bfloat16_deviation(tmp_path):
    arguments = ("--num-images", 4, "--steps", 8, "--baseline", "blur", "--rule", "midpoint", "--device", "cpu")
    result = run_iml("ig", *arguments, "--precision", "bfloat16", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Integrated Gradients (blur baseline, m = 8, midpoint rule, bfloat16 autocast) for 4 test digits" in (
        result.stdout
    )
    assert "completeness, sum of attributions - (F(x) - F(x')) per image" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("bfloat16 against float32"))
    assert line.startswith("bfloat16 against float32 on the first 4 digits (plain IG): largest difference ")
    largest = float(line.split("largest difference ")[1].split()[0])
    assert 0 < largest < 0.1
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ig_maps.png"]


def test_digit_noise_baseline_and_smoothgrad(tmp_path, capsys, monkeypatch):
    argv = ["--digit", "3", "--num-images", "2", "--steps", "4", "--baseline", "noise", "--noise-draws", "2"]
    argv += ["--smoothgrad", "2", "--device", "cpu", "--out", str(tmp_path)]
    assert run_cli(ig_command, argv, monkeypatch) == "ran"
    out = capsys.readouterr().out
    assert "uniform-noise baseline (2 draws), m = 4, right rule, SmoothGrad 2 x sigma 0.15) for 2 test digits" in out
    assert "(SmoothGrad adds noise to x, so this is not expected to be 0)" in out


@FUZZ
@example(argv=[])
@given(
    argv=argument_lists(
        build_parser(), {"--weights", "--out", "--num-images", "--noise-draws", "--smoothgrad", "--compile"}
    )
)
def test_fuzz_ig(argv, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never in a traceback."""
    out = tmp_path_factory.mktemp("out")
    outcome = run_cli(ig_command, ["--out", str(out), "--num-images", "2", "--steps", "2", *argv], monkeypatch)
    if not argv:
        assert outcome == "ran" and list(out.glob("*.png"))
