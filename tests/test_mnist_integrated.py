"""src/mnist_integrated.py: the reference Integrated Gradients and the Task 2 script.

The properties of Integrated Gradients itself (completeness, Captum's numbers, one output per
image) are checked for both the reference `integrate_gradients` and the fast path
`integrated_fast.integrate_gradients_fast`, which the script runs.
"""

import ast
import inspect
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from conftest import (
    FUZZ,
    argparse_error,
    argument_lists,
    cnn_turning_nan,
    linear_model,
    run_cli,
    run_script,
    smooth_model,
)
from hypothesis import example, given

import mnist_integrated
from iml import cli, training
from iml.attribution import blurred, completeness_gap
from iml.common import ROOT, WEIGHTS_PATH, InputError
from iml.integrated_fast import integrate_gradients_fast
from iml.quadrature import CAPTUM_METHODS, RULES
from mnist_integrated import build_parser, get_model, integrate_gradients
from models import load_cnn

IMPLEMENTATIONS = {"reference": integrate_gradients, "fast": integrate_gradients_fast}
each_implementation = pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())


def captum_ig(net, x, target, m, method, baseline):
    return IntegratedGradients(net).attribute(x, baselines=baseline, target=target, n_steps=m, method=method)


# ------------------------------------------------------------------ Integrated Gradients


def test_reference_is_the_exercise_formula_with_autograd(model64, digits):
    x, labels = digits[0][:2].double(), digits[1][:2]
    baseline = torch.rand_like(x, dtype=torch.float64)
    m = 5
    expected = torch.zeros_like(x)
    for i in range(len(x)):
        for k in range(1, m + 1):
            point = (baseline[i] + k / m * (x[i] - baseline[i]))[None].requires_grad_()
            (gradient,) = torch.autograd.grad(model64(point)[0, labels[i]], point)
            expected[i] += gradient[0] / m
    expected *= x - baseline
    torch.testing.assert_close(integrate_gradients(model64, x, labels, steps_m=m, baseline=baseline), expected)


@each_implementation
@pytest.mark.parametrize("rule", RULES)
def test_completeness_is_exact_for_a_linear_model(rule, implementation, digits):
    net = linear_model()
    x = digits[0].double()
    baseline = torch.rand_like(x)
    attributions = implementation(net, x, 3, steps_m=4, baseline=baseline, rule=rule)
    weight = net[1].weight[3].detach().view(1, 1, 28, 28)
    torch.testing.assert_close(attributions, (x - baseline) * weight)
    assert completeness_gap(net, x, attributions, 3, baseline).abs().max() < 1e-12


@each_implementation
def test_completeness_tightens_as_m_grows_for_a_smooth_model(implementation, digits):
    net = smooth_model()
    x, labels = digits[0].double(), digits[1]
    with torch.no_grad():
        change = net(x).gather(1, labels[:, None]).squeeze(1) - net(torch.zeros_like(x))[0, labels]

    def relative_gap(rule, m):
        attributions = implementation(net, x, labels, steps_m=m, rule=rule)
        return float((completeness_gap(net, x, attributions, labels).abs() / change.abs()).max())

    right = [relative_gap("right", m) for m in (8, 32, 128)]
    assert right[0] > 4 * right[1] > 16 * right[2] > 0  # first order: the gap falls like 1/m
    assert right[2] < 2e-2
    trapezoid = [relative_gap("trapezoid", m) for m in (8, 32)]
    assert trapezoid[1] < trapezoid[0] / 8  # second order: 1/m^2
    assert relative_gap("gausslegendre", 16) < 1e-9


@each_implementation
def test_output_digit_may_be_one_int_or_one_per_image(implementation, model64, digits):
    x = digits[0][:3].double()
    one = implementation(model64, x, 7, steps_m=10)
    each = implementation(model64, x, torch.tensor([7, 7, 7]), steps_m=10)
    torch.testing.assert_close(one, each)
    mixed = implementation(model64, x, torch.tensor([7, 1, 7]), steps_m=10)
    torch.testing.assert_close(mixed[[0, 2]], one[[0, 2]])
    assert not torch.allclose(mixed[1], one[1])


@each_implementation
def test_attributions_keep_the_dtype_and_shape_of_the_images(implementation, shipped_model, digits):
    x, labels = digits[0][:2], digits[1][:2]
    attributions = implementation(shipped_model, x, labels, steps_m=4)
    assert attributions.shape == x.shape and attributions.dtype == torch.float32


@each_implementation
@pytest.mark.parametrize("rule", list(CAPTUM_METHODS))
def test_agrees_with_captum(rule, implementation, model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    targets = torch.tensor([labels[0].item(), 4, labels[2].item()])  # explained and unexplained digits
    for baseline in (torch.zeros_like(x), blurred(x)):
        ours = implementation(model64, x, targets, steps_m=16, baseline=baseline, rule=rule)
        theirs = captum_ig(model64, x, targets, 16, CAPTUM_METHODS[rule], baseline)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))


@each_implementation
def test_captum_trapezoid_weights_sum_to_less_than_one(implementation, model64, digits):
    m = 12
    # the installed Captum: m nodes at linspace(0, 1, m), weights 1/m with halved ends
    step_sizes, alphas = approximation_parameters("riemann_trapezoid")
    np.testing.assert_allclose(alphas(m), np.linspace(0, 1, m), atol=1e-7)
    assert sum(step_sizes(m)) == pytest.approx((m - 1) / m)
    x, labels = digits[0][:4].double(), digits[1][:4]
    ours = implementation(model64, x, labels, steps_m=m, rule="trapezoid")
    theirs = captum_ig(model64, x, labels, m, "riemann_trapezoid", torch.zeros_like(x))
    torch.testing.assert_close(ours, theirs * m / (m - 1), rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))
    our_gap = completeness_gap(model64, x, ours, labels).abs()
    their_gap = completeness_gap(model64, x, theirs, labels).abs()
    assert our_gap.median() < their_gap.median()


# ------------------------------------------------------------------ the command line


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
    assert (args.num_images, args.steps, args.rule, args.baseline, args.digit) == (400, 300, "right", "black", None)


def test_parser_rejects_bad_training_values(capsys):
    parser = build_parser()
    errors = [
        argparse_error(parser, bad, capsys) for bad in (["--epochs", "0"], ["--batch-size", "-3"], ["--lr", "nan"])
    ]
    assert "must be an integer from 1 to" in "".join(errors)
    args = parser.parse_args([])
    assert (args.epochs, args.batch_size, args.lr, args.val_size, args.train_size) == (4, 128, 3e-3, 5000, 0)
    assert args.weights == WEIGHTS_PATH and not args.retrain


def test_check_arguments_refuses_impossible_sizes_before_any_work(tmp_path):
    parser = build_parser()
    with pytest.raises(InputError) as info:
        mnist_integrated.check_arguments(parser.parse_args(["--rule", "trapezoid", "--steps", "1"]))
    assert cli.user_message(info.value) == "the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more."


def test_nan_during_training_stops_and_writes_no_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "CNN", cnn_turning_nan(after_calls=5))
    weights = tmp_path / "weights.pth"
    args = build_parser().parse_args(
        ["--retrain", "--train-size", "2000", "--val-size", "0", "--epochs", "1", "--weights", str(weights)]
    )
    with pytest.raises(cli.UserError, match=r"training diverged: the loss became nan in epoch 1, batch 5; lower --lr"):
        get_model(args, torch.device("cpu"))
    assert not weights.exists() and not any(tmp_path.iterdir())


def test_existing_weights_are_kept_without_retrain(weights_copy):
    before = weights_copy.read_bytes()
    result = run_script("mnist_integrated.py", "--train-only", "--weights", weights_copy)
    assert result.returncode == 0, result.stderr
    assert "test accuracy 99." in result.stdout
    assert weights_copy.read_bytes() == before


def test_killed_training_leaves_previous_weights_intact(weights_copy):
    before = weights_copy.read_bytes()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-u", str(ROOT / "src" / "mnist_integrated.py"), "--retrain", "--train-only"]
    command += ["--weights", str(weights_copy), "--epochs", "50", "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert "training on" in process.stdout.readline()
        time.sleep(3)  # well inside the first of 50 epochs
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert weights_copy.read_bytes() == before
    assert sorted(p.name for p in weights_copy.parent.iterdir()) == ["weights.pth"]
    load_cnn(weights_copy)


def test_validation_split_larger_than_the_training_set(tmp_path):
    result = run_script("mnist_integrated.py", "--retrain", "--val-size", "60000", "--weights", tmp_path / "w.pth")
    assert (
        result.returncode == 2 and "argument --val-size: must be an integer from 0 to 59999, got 60000" in result.stderr
    )
    assert not (tmp_path / "w.pth").exists()


def test_script_writes_figures_and_reports_completeness(tmp_path):
    result = run_script(
        "mnist_integrated.py", "--num-images", 20, "--steps", 8, "--skip-checks", "--device", "cpu", "--out", tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy 99.43% on 10000 test digits" in result.stdout
    assert "completeness, sum of attributions - (F(x) - F(x')) per image" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ig_attributions.png", "ig_class_means.png"]


def test_script_rejects_trapezoid_with_one_step(tmp_path):
    result = run_script(
        "mnist_integrated.py",
        "--num-images",
        2,
        "--steps",
        1,
        "--rule",
        "trapezoid",
        "--device",
        "cpu",
        "--out",
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr == "error: the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more.\n"
    assert not list(tmp_path.iterdir())


def test_script_reports_the_bfloat16_deviation(tmp_path):
    arguments = ("--num-images", 4, "--steps", 8, "--skip-checks", "--device", "cpu", "--out", tmp_path)
    result = run_script("mnist_integrated.py", *arguments, "--precision", "bfloat16")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("bfloat16 against float32"))
    assert line.startswith("bfloat16 against float32 on the first 4 digits (plain IG): largest difference ")
    largest = float(line.split("largest difference ")[1].split()[0])
    assert 0 < largest < 0.1


# ------------------------------------------------------------------ fuzzing the command line


@pytest.fixture(scope="module")
def fuzz_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "weights.pth"
    path.write_bytes(WEIGHTS_PATH.read_bytes())
    return path


@FUZZ
@example(argv=[])
@given(
    argv=argument_lists(
        build_parser(),
        {"--weights", "--out", "--retrain", "--num-images", "--skip-checks", "--noise-draws", "--smoothgrad"},
    )
)
def test_fuzz_mnist_integrated(argv, fuzz_weights, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never in a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--weights", str(fuzz_weights), "--out", str(out), "--num-images", "2", "--skip-checks", "--steps", "2"]
    before = fuzz_weights.read_bytes()
    outcome = run_cli(mnist_integrated, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and list(out.glob("*.png"))
    assert fuzz_weights.read_bytes() == before  # never replaced without --retrain


def integrate_gradients_code():
    """The source of `integrate_gradients` without its docstring, as lines."""
    lines = inspect.getsource(integrate_gradients).splitlines()
    docstring = ast.get_docstring(ast.parse(inspect.getsource(integrate_gradients)).body[0], clean=False)
    start = next(i for i, line in enumerate(lines) if line.strip().startswith('"""'))
    end = start + docstring.count("\n")
    return lines[:start] + lines[end + 1 :]


def test_the_reference_is_short_and_the_readme_shows_it_as_it_is():
    code = integrate_gradients_code()
    assert len([line for line in code[1:] if line.strip()]) <= 25
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("```python\n", 1)[1].split("```", 1)[0].rstrip("\n").splitlines()
    assert shown == code
