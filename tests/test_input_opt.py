"""src/input_opt.py (Task 1): gradient ascent on the input of the MNIST CNN, its objective, its
parametrisation, and its command line."""

import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    FUZZ,
    argparse_error,
    argument_lists,
    cnn_turning_nan,
    raises_explained,
    run_cli,
    run_script,
)
from hypothesis import example, given

import input_opt
from iml import cli
from iml.common import FIGURES_DIR, WEIGHTS_PATH
from iml.input_opt_plots import classify
from input_opt import (
    DIGITS,
    FREE_PIXELS,
    NO_PENALTIES,
    PROTOTYPE,
    STARTS,
    Parametrization,
    Penalties,
    adam_ascent_step,
    build_parser,
    make_gradients,
    make_starts,
    optimize_inputs,
    shift,
    total_variation,
)
from models import CNN, save_checkpoint


@pytest.fixture(scope="module")
def starts():
    return make_starts(STARTS, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def plain(shipped_model, starts):
    """The exercise: every digit from both starts, no regularisers, 30 steps."""
    return optimize_inputs(shipped_model, DIGITS, starts, steps=30, lr=0.1)


def test_starts_are_uniform_random_and_all_ones(starts):
    assert starts.shape == (2, 1, 28, 28)
    assert starts[0].min() >= 0 and starts[0].max() < 1 and starts[0].std() > 0.25  # uniform: std 0.289
    assert torch.equal(starts[1], torch.ones(1, 28, 28))
    with pytest.raises(ValueError, match="unknown start 'zeros'"):
        make_starts(["zeros"])


def test_every_digit_from_both_starts_is_reached(shipped_model, plain):
    assert plain.images.shape == (2, 10, 1, 28, 28)
    assert plain.logit.shape == plain.probability.shape == plain.objective.shape == (31, 2, 10)
    assert plain.parametrization == FREE_PIXELS
    # without regularisers the objective is the logit itself
    torch.testing.assert_close(plain.objective, plain.logit)
    rise = plain.logit[-1] - plain.logit[0]
    assert rise.min() > 50, rise
    # the history is measured, not assumed: the final entry is the logit of the returned image
    final_logits = shipped_model(plain.images.view(-1, 1, 28, 28)).view(2, 10, 10)
    torch.testing.assert_close(final_logits.diagonal(dim1=1, dim2=2), plain.logit[-1], rtol=1e-4, atol=1e-3)
    predicted, confidence = classify(shipped_model, plain.images)
    assert torch.equal(predicted, torch.arange(10).expand(2, 10))
    assert confidence.min() > 0.999
    # the start is not already the target (otherwise "reached" would prove nothing)
    assert plain.probability[0].mean() < 0.5
    assert (plain.confident_step > 0).sum() >= 15


def test_no_nan_or_inf_for_either_start(plain):
    for tensor in (plain.images, plain.logit, plain.probability, plain.objective, plain.confident_images):
        assert torch.isfinite(tensor).all()
    # what a step rule that divides by the spread of x would do with the all-ones start
    ones = torch.ones(1, 1, 28, 28)
    assert torch.isnan((ones - ones.mean()) / ones.std()).all()


def test_no_nan_with_zero_gradient_and_huge_steps(starts):
    # an all-zero network has a zero gradient everywhere: Adam must step by 0, not 0/0
    dead = CNN().eval()
    for p in dead.parameters():
        torch.nn.init.zeros_(p)
    result = optimize_inputs(dead, DIGITS, starts, steps=3, lr=1e3, penalties=Penalties(tv=1.0, l2=1.0))
    assert torch.isfinite(result.images).all() and torch.isfinite(result.objective).all()
    # with only the zero logit gradient the random start would not move; the penalties pull it
    assert (result.images[0, 0] - starts[0]).abs().max() > 0


def test_pixels_the_network_cannot_see_keep_their_start(plain, starts):
    # the second pooling (11 -> 5) drops the last row and column of its input, so the last two
    # rows and columns of the image never reach the output: their gradient is exactly zero
    for s in range(2):
        assert torch.equal(plain.images[s, :, :, 26:, :], starts[s, :, 26:, :].expand(10, 1, 2, 28))
        assert torch.equal(plain.images[s, :, :, :, 26:], starts[s, :, :, 26:].expand(10, 1, 28, 2))
    assert (plain.images[:, :, :, :26, :26] != starts[:, None, :, :26, :26]).float().mean() > 0.9


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
    # the regularised optimum is image-like: much smoother and far smaller than the plain one
    assert (total_variation(result.images[0, 3]) * 5 < total_variation(plain.images[0, 3])).item()
    assert plain.images.abs().max() > 3  # plain pixels leave [0, 1] after 30 steps already
    # and the objective (logit minus penalties) still rose
    assert (result.objective[-1] > result.objective[0]).all()


def test_adam_step_equals_torch_optim_adam():
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 28, 28, generator=generator)
    reference = x.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([reference], lr=0.05, maximize=True)
    state = {"m": torch.zeros_like(x), "v": torch.zeros_like(x), "t": 0}
    for step in range(6):
        gradient = torch.randn(x.shape, generator=generator) * 10.0**step  # scales from 1 to 1e5
        gradient[0] = 0  # a zero gradient must give a zero step, not 0/0
        x = adam_ascent_step(x, gradient, state, lr=0.05)
        reference.grad = gradient.clone()
        optimizer.step()
        torch.testing.assert_close(x, reference.detach())
    assert torch.isfinite(x).all()
    assert torch.equal(x[0], reference.detach()[0])


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


# ------------------------------------------------------------------ the command line


def test_parser_defaults_and_bad_values(capsys):
    parser = build_parser()
    args = parser.parse_args([])
    assert args.neuron == DIGITS and args.init == "both" and args.steps > 0 and args.lr > 0
    assert args.weights == WEIGHTS_PATH and args.out == FIGURES_DIR
    assert parser.parse_args(["--neuron", "7"]).neuron == (7,)
    assert parser.parse_args(["--neuron", "all"]).neuron == DIGITS
    for action in parser._actions:
        if action.dest != "help":
            assert "default" in action.help, action.dest
    bad = {
        ("--neuron", "10"): "must be a digit 0-9, got 10",
        ("--neuron", "-1"): "must be a digit 0-9, got -1",
        ("--neuron", "three"): "'three' is not a digit 0-9",
        ("--steps", "0"): "must be an integer from 1 to 100000, got 0",
        ("--steps", "-5"): "must be an integer from 1 to 100000, got -5",
        ("--lr", "0"): "must be a number above 0 to 100, got 0",
        ("--lr", "1e38"): "must be a number above 0 to 100, got 1e38",
        ("--tv", "-1"): "must be a number from 0 to 1000, got -1",
        ("--jitter", "100000"): "must be an integer from 0 to 14, got 100000",
        ("--blur", "1e6"): "must be a number from 0 to 10, got 1e6",
        ("--threads", "10000000000"): "must be an integer from 1 to 1024, got 10000000000",
        ("--init", "zeros"): "invalid choice: 'zeros'",
        # numpy's generator takes seeds 0 to 2**32 - 1; a negative one was a traceback
        ("--seed", "-1"): "must be an integer from 0 to 4294967295, got -1",
    }
    for argv, message in bad.items():
        assert message in argparse_error(parser, argv, capsys)


def test_main_writes_figures_and_table(tmp_path, monkeypatch, capsys):
    argv = [
        "input_opt.py",
        "--neuron",
        "4",
        "--init",
        "both",
        "--steps",
        "8",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    input_opt.main()
    out = capsys.readouterr().out
    assert "random start" in out and "ones start" in out and "regularised (L2" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("4 |")]
    assert len(rows) == 2  # one table row for the plain and one for the regularised run
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["input_opt_curves.png", "input_opt_grid.png", "input_opt_regularised.png"]
    assert all((tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in names)

    no_reg = ["--l2", "0", "--tv", "0", "--jitter", "0", "--blur", "0", "--no-clip"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "plain"), *no_reg])
    input_opt.main()
    assert "regularised run and its figure were skipped" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["input_opt_curves.png", "input_opt_grid.png"]


def test_broken_weights_give_one_sentence(tmp_path):
    missing = tmp_path / "missing.pth"
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(WEIGHTS_PATH.read_bytes()[:5000])
    foreign = tmp_path / "foreign.pth"
    save_checkpoint(foreign, torch.nn.Linear(4, 2), {}, 0.0)
    expected = {
        missing: "does not exist",
        truncated: "is truncated or not a PyTorch checkpoint",
        foreign: "belongs to another network, not this CNN",
    }
    for path, problem in expected.items():
        result = run_script("input_opt.py", "--weights", path, "--steps", "1", "--out", tmp_path / "figures")
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: weights file {path}")
        assert problem in lines[0]
        assert "recreate it with `python src/mnist_integrated.py --retrain" in lines[0]
    assert not (tmp_path / "figures").exists()

    result = run_script("input_opt.py", "--out", truncated, "--steps", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"error: --out {truncated} is a file, not a folder; give the name of a folder.\n"


def test_nan_during_input_optimization_stops_and_keeps_old_figures(tmp_path, monkeypatch, shipped_model):
    old = tmp_path / "input_opt_grid.png"
    old.write_bytes(b"previous figure")
    turns_nan = cnn_turning_nan(after_calls=3)()
    turns_nan.load_state_dict(shipped_model.state_dict())
    monkeypatch.setattr(input_opt, "load_cnn", lambda path, device: turns_nan.to(device).eval())
    monkeypatch.setattr(sys, "argv", ["input_opt.py", "--steps", "20", "--out", str(tmp_path)])
    with raises_explained(
        r"^gradient ascent broke down at step \d+: the objective became NaN or Inf; lower --lr \(now 0\.1\) and run again\.$",
        cli.UserError,
    ):
        input_opt.main()
    assert old.read_bytes() == b"previous figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input_opt_grid.png"]


def test_optimize_inputs_raises_floating_point_error_when_the_objective_overflows(shipped_model, starts):
    with pytest.raises(FloatingPointError, match=r"^gradient ascent broke down at step \d+: the objective became NaN"):
        optimize_inputs(shipped_model, (3,), starts, steps=5, lr=1e38)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "weights.pth"
    shutil.copyfile(WEIGHTS_PATH, path)
    return path


@FUZZ
@example(argv=[])
@given(argv=argument_lists(input_opt.build_parser(), {"--weights", "--out", "--threads"}))
def test_fuzz_input_opt_command_line(argv, weights, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--weights", str(weights), "--out", str(out), "--steps", "2"]
    outcome = run_cli(input_opt, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and len(list(out.glob("*.png"))) == 3
