"""src/iml/regularized.py: `python -m iml input-opt-regularized`, input optimization with penalties (L2,
total variation) and a parametrization (jitter, blur, clip), beside the plain ascent of the exercise."""

import sys
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    FUZZ,
    argparse_error,
    argument_lists,
    assert_clear_error,
    cnn_turning_nan,
    raises_explained,
    run_cli,
    run_iml,
)
from hypothesis import example, given

import input_opt
from iml import cli, regularized
from iml.common import WEIGHTS_PATH
from iml.input_opt_plots import classify
from iml.outputs import OUTPUTS_DIR
from iml.regularized import (
    FREE_PIXELS,
    NO_PENALTIES,
    PROTOTYPE,
    START_KINDS,
    Parametrization,
    Penalties,
    build_parser,
    make_gradients,
    optimize_inputs,
    shift,
    starting_images,
    total_variation,
)
from models import CNN

DIGITS = tuple(range(10))


@pytest.fixture(scope="module")
def starts():
    return starting_images(START_KINDS, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def plain(shipped_model, starts):
    """Every digit from both starts, no regularizers, 30 steps."""
    return optimize_inputs(shipped_model, DIGITS, starts, steps=30, lr=0.1)


def test_starts_are_uniform_random_and_all_ones(starts):
    assert starts.shape == (2, 1, 28, 28)
    assert starts[0].min() >= 0 and starts[0].max() < 1 and starts[0].std() > 0.25  # uniform: std 0.289
    assert torch.equal(starts[1], torch.ones(1, 28, 28))
    with pytest.raises(ValueError, match=r"^starting_images needs kind as one of random, ones, got 'zeros'$"):
        starting_images(["zeros"])


def test_with_every_regularizer_off_the_loop_gives_the_exercises_images(shipped_model):
    """The same seed gives the same starts, and the plain run of this loop the same images and history as the
    exercise's `optimize_input` in src/input_opt.py (two implementations of one ascent)."""
    names = ("random", "ones")
    generator = torch.Generator().manual_seed(5)
    exercise_starts = {name: input_opt.make_start(name, generator) for name in names}
    ours = starting_images(names, torch.Generator().manual_seed(5))
    assert torch.equal(ours, torch.cat(list(exercise_starts.values())))
    neurons = (0, 4, 7)
    exercise = input_opt.optimize_input(shipped_model, neurons, exercise_starts, steps=15, lr=0.1)
    result = optimize_inputs(shipped_model, neurons, ours, steps=15, lr=0.1)
    torch.testing.assert_close(result.images, exercise.images, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(result.logit, exercise.logit, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(result.probability, exercise.probability, rtol=1e-5, atol=1e-5)
    assert (result.images - result.starts[:, None]).abs().max() > 1  # they moved, so the test says something


def test_every_digit_from_both_starts_is_reached_and_the_plain_objective_is_the_logit(shipped_model, plain):
    assert plain.images.shape == (2, 10, 1, 28, 28)
    assert plain.logit.shape == plain.probability.shape == plain.objective.shape == (31, 2, 10)
    assert plain.parametrization == FREE_PIXELS
    # without regularizers the objective is the logit itself
    torch.testing.assert_close(plain.objective, plain.logit)
    assert (plain.logit[-1] - plain.logit[0]).min() > 50
    predicted, confidence = classify(shipped_model, plain.images)
    assert torch.equal(predicted, torch.arange(10).expand(2, 10))
    assert confidence.min() > 0.999
    assert plain.probability[0].mean() < 0.5
    assert (plain.confident_step > 0).sum() >= 15
    for tensor in (plain.images, plain.logit, plain.probability, plain.objective, plain.confident_images):
        assert torch.isfinite(tensor).all()


def test_no_nan_with_zero_gradient_and_huge_steps(starts):
    # an all-zero network has a zero gradient everywhere: Adam must step by 0, not 0/0
    dead = CNN().eval()
    for p in dead.parameters():
        torch.nn.init.zeros_(p)
    result = optimize_inputs(dead, DIGITS, starts, steps=3, lr=1e3, penalties=Penalties(tv=1.0, l2=1.0))
    assert torch.isfinite(result.images).all() and torch.isfinite(result.objective).all()
    # with only the zero logit gradient the random start would not move; the penalties pull it
    assert (result.images[0, 0] - starts[0]).abs().max() > 0


@pytest.mark.parametrize(
    "penalties, jitter_shift",
    [
        (NO_PENALTIES, (0, 0)),
        (Penalties(l2=0.3, tv=0.2), (0, 0)),
        (Penalties(l2=0.05, tv=0.1), (2, -1)),
    ],
)
def test_func_grad_equals_autograd(shipped_model, penalties, jitter_shift):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 28, 28, generator=generator)
    neurons = torch.tensor([0, 3, 9, 9, 5, 1])
    targets = F.one_hot(neurons, 10).float()
    dy, dx = jitter_shift
    gradient, value, logit, probability = make_gradients(shipped_model, penalties)(x, targets, dy, dx)

    # the reference: plain autograd on the same images, written without torch.func and without
    # our shift(): the shifted image is built by copying into a zero canvas
    leaf = x.clone().requires_grad_(True)
    moved = torch.zeros_like(leaf)
    rows = slice(max(dy, 0), 28 + min(dy, 0)), slice(max(-dy, 0), 28 + min(-dy, 0))
    cols = slice(max(dx, 0), 28 + min(dx, 0)), slice(max(-dx, 0), 28 + min(-dx, 0))
    moved[:, :, rows[0], cols[0]] = leaf[:, :, rows[1], cols[1]]
    logits = shipped_model(moved)
    chosen = logits[torch.arange(6), neurons]
    tv = (leaf.diff(dim=2).abs().sum((1, 2, 3))) + leaf.diff(dim=3).abs().sum((1, 2, 3))
    expected_value = chosen - penalties.l2 * (leaf**2).sum((1, 2, 3)) - penalties.tv * tv
    (expected_gradient,) = torch.autograd.grad(expected_value.sum(), leaf)

    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(value, expected_value.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(logit, chosen.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(probability, logits.softmax(1)[torch.arange(6), neurons].detach())
    assert gradient.abs().sum() > 0


def test_regularized_run_gives_valid_confident_digits(shipped_model, starts, plain):
    penalties, parametrization = PROTOTYPE
    result = optimize_inputs(
        shipped_model,
        DIGITS,
        starts,
        steps=50,  # 30 are enough on the shipped weights; 50 leave a margin
        lr=0.1,
        penalties=penalties,
        parametrization=parametrization,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.parametrization == parametrization
    assert torch.isfinite(result.images).all()
    assert result.images.min() >= 0 and result.images.max() <= 1  # clipped to the MNIST range
    predicted, confidence = classify(shipped_model, result.images)
    assert torch.equal(predicted, torch.arange(10).expand(2, 10))
    assert confidence.min() > 0.9
    # the regularized optimum is image-like: much smoother and far smaller than the plain one
    assert (total_variation(result.images[0, 3]) * 5 < total_variation(plain.images[0, 3])).item()
    assert plain.images.abs().max() > 3  # plain pixels leave [0, 1] after 30 steps already
    # and the objective (logit minus penalties) still rose
    assert (result.objective[-1] > result.objective[0]).all()


def test_the_loop_steps_with_torch_optim_adam_and_blurs_and_clips_after_each_step(shipped_model, starts):
    """One step by hand: torch.optim.Adam(maximize=True) on the gradient, then the after-step."""
    parametrization = Parametrization(blur=0.7, clip=True)
    result = optimize_inputs(shipped_model, (2,), starts, 1, 0.05, parametrization=parametrization)
    x = starts.clone().requires_grad_(True)
    gradient = make_gradients(shipped_model)(starts, F.one_hot(torch.tensor([2, 2]), 10).float())[0]
    reference = torch.optim.Adam([x], lr=0.05, maximize=True)
    x.grad = gradient
    reference.step()
    expected = parametrization.after_step(x.detach())
    torch.testing.assert_close(result.images[:, 0], expected)


def test_shift_moves_images_with_black_fill_and_total_variation_counts_edges():
    x = torch.arange(28 * 28, dtype=torch.float32).view(1, 1, 28, 28)
    moved = shift(x, 2, -3)
    assert torch.equal(moved[..., 2:, :25], x[..., :26, 3:])
    assert moved[..., :2, :].abs().sum() == 0 and moved[..., :, 25:].abs().sum() == 0
    assert torch.equal(shift(x, 0, 0), x)

    square = torch.zeros(1, 28, 28)
    square[:, 10:20, 10:20] = 1  # perimeter 40 edges of height 1
    assert total_variation(square).item() == 40
    assert total_variation(torch.ones(1, 28, 28)).item() == 0


def test_blur_after_a_step_keeps_a_constant_image_and_spreads_a_dot_keeping_its_sum():
    blur = Parametrization(blur=1.0)
    constant = torch.full((2, 1, 28, 28), 0.7)
    torch.testing.assert_close(blur.after_step(constant), constant)
    dot = torch.zeros(1, 1, 28, 28)
    dot[..., 14, 14] = 1
    blurred = blur.after_step(dot)
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0))
    assert blurred[..., 14, 14] < 0.2 and blurred[..., 14, 15] > 0.05
    assert torch.equal(Parametrization(blur=0).after_step(dot), dot)
    assert torch.equal(FREE_PIXELS.after_step(dot * 5 - 2), dot * 5 - 2)  # free pixels: nothing changes


def test_clip_after_a_step_projects_onto_the_mnist_range():
    x = torch.linspace(-2, 3, 28 * 28).view(1, 1, 28, 28)
    clipped = Parametrization(clip=True).after_step(x)
    assert clipped.min() == 0 and clipped.max() == 1
    torch.testing.assert_close(clipped, x.clamp(0, 1))


def test_jitter_offsets_stay_within_the_jitter_and_repeat_with_the_generator():
    assert FREE_PIXELS.offsets(torch.Generator().manual_seed(0)) == (0, 0)
    jitter = Parametrization(jitter=2)
    offsets = [jitter.offsets(torch.Generator().manual_seed(seed)) for seed in range(40)]
    assert {value for pair in offsets for value in pair} == {-2, -1, 0, 1, 2}
    assert jitter.offsets(torch.Generator().manual_seed(7)) == offsets[7]


def test_optimize_inputs_raises_floating_point_error_when_the_objective_overflows(shipped_model, starts):
    with pytest.raises(FloatingPointError, match=r"^gradient ascent broke down at step \d+: the objective became NaN"):
        optimize_inputs(shipped_model, (3,), starts, steps=5, lr=1e37)


# ------------------------------------------------------------------ the command line


def test_parser_shares_the_exercises_options_and_adds_the_regularizers(capsys):
    parser, exercise = build_parser(), input_opt.build_parser()
    assert parser.prog == "python -m iml input-opt-regularized"
    args = parser.parse_args([])
    # every option of the exercise, with the same default and the same refusals
    shared = vars(exercise.parse_args([]))
    del shared["out"]  # each writes into a folder of its own
    assert {name: getattr(args, name) for name in shared} == shared
    assert (args.weights, args.out, args.steps, args.lr, args.seed) == (
        WEIGHTS_PATH,
        OUTPUTS_DIR / "input-opt-regularized",
        100,
        0.1,
        0,
    )
    refused = [("--neuron", "10"), ("--neuron", "three"), ("--steps", "0"), ("--lr", "1e38"), ("--threads", "0")]
    refused += [("--init", "zeros"), ("--seed", "-1")]
    for argv in refused:
        assert (
            argparse_error(parser, argv, capsys).splitlines()[-1].split(": ", 1)[1]
            == (argparse_error(exercise, argv, capsys).splitlines()[-1].split(": ", 1)[1])
        )
    assert parser.parse_args(["--neuron", "7"]).neuron == (7,)
    # the regularizers: today's prototype by default, each with its range
    assert (args.l2, args.tv, args.jitter, args.blur, args.clip) == (0.05, 0.05, 1, 0.0, True)
    assert parser.parse_args(["--no-clip"]).clip is False
    assert all("default" in action.help for action in parser._actions if action.dest != "help")
    for flag, value, allowed in (
        ("--l2", "nan", "a number from 0 to 1000"),
        ("--tv", "-1", "a number from 0 to 1000"),
        ("--jitter", "100000", "an integer from 0 to 14"),
        ("--blur", "1e6", "a number from 0 to 10"),
        ("--threads", "10000000000", "an integer from 1 to 1024"),
    ):
        assert f"must be {allowed}, got {value}" in argparse_error(parser, [flag, value], capsys)


def test_main_prints_both_tables_and_writes_the_comparison(tmp_path, capsys):
    argv = ["--neuron", "4", "--init", "both", "--steps", "8", "--device", "cpu", "--out", str(tmp_path)]
    regularized.main(argv)
    out = capsys.readouterr().out
    assert "random start" in out and "ones start" in out and "regularized (L2" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("4 |")]
    assert len(rows) == 2  # one table row for the plain and one for the regularized run
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["input_opt_regularized.png"]
    assert (tmp_path / "input_opt_regularized.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    no_reg = ["--l2", "0", "--tv", "0", "--jitter", "0", "--blur", "0", "--no-clip"]
    regularized.main([*argv, "--out", str(tmp_path / "plain"), *no_reg])
    assert "regularized run and its figure were skipped" in capsys.readouterr().out
    assert not (tmp_path / "plain").exists()


def test_the_command_runs_as_a_user_types_it_and_refuses_broken_weights_in_one_line(tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(WEIGHTS_PATH.read_bytes()[:5000])
    result = run_iml("input-opt-regularized", "--weights", truncated, "--steps", "1", "--out", tmp_path / "figures")
    line = assert_clear_error(result, f"weights file {truncated}", "is truncated or not a PyTorch checkpoint")
    assert "recreate it with `python src/mnist_integrated.py --retrain" in line and result.returncode == 1
    assert not (tmp_path / "figures").exists()
    result = run_iml("input-opt-regularized", "--out", truncated, "--steps", "1")
    assert result.returncode == 1
    assert result.stderr == f"error: --out {truncated} is a file, not a folder; give the name of a folder.\n"
    result = run_iml("input-opt-regularized", "--neuron", "3", "--steps", "3", "--out", tmp_path / "ok")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ok" / "input_opt_regularized.png").is_file()


def test_nan_during_input_optimization_stops_and_keeps_old_figures(tmp_path, monkeypatch, shipped_model):
    old = tmp_path / "input_opt_regularized.png"
    old.write_bytes(b"previous figure")
    turns_nan = cnn_turning_nan(after_calls=3)()
    turns_nan.load_state_dict(shipped_model.state_dict())
    monkeypatch.setattr("models.load_cnn", lambda path, device: turns_nan.to(device).eval())
    with raises_explained(
        r"^gradient ascent broke down at step \d+: the objective became NaN or Inf; lower --lr \(now 0\.1\) and run again\.$",
        cli.UserError,
    ):
        regularized.main(["--steps", "20", "--out", str(tmp_path)])
    assert old.read_bytes() == b"previous figure"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["input_opt_regularized.png"]


@FUZZ
@example(argv=[])
@given(argv=argument_lists(build_parser(), {"--weights", "--out", "--threads"}))
def test_fuzz_input_opt_regularized_command_line(argv, weights_copy, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    command = types.SimpleNamespace(__name__="regularized", main=lambda: regularized.main(sys.argv[1:]))
    outcome = run_cli(command, ["--weights", str(weights_copy), "--out", str(out), "--steps", "2", *argv], monkeypatch)
    # the plain defaults run both optimizations and write the one comparison
    assert argv or (outcome == "ran" and [p.name for p in out.glob("*.png")] == ["input_opt_regularized.png"])
