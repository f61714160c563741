"""src/input_opt.py (Task 1): the forward pass of one output neuron, its gradient by torch.func.grad,
the Adam ascent from a random and an all-ones start, the figures and table, and the command line."""

import shutil
import sys
import types

import pytest
import torch
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
from torch import nn

import input_opt
from iml import cli
from iml.common import WEIGHTS_PATH
from iml.outputs import OUTPUTS_DIR
from input_opt import (
    DIGITS,
    FURTHER,
    STARTS,
    Ascent,
    build_parser,
    format_table,
    make_forward_pass,
    make_start,
    optimize_input,
    plot_curves,
    plot_grid,
)
from models import CNN


def both_starts(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: make_start(name, generator) for name in STARTS}


@pytest.fixture(scope="module")
def starts():
    return both_starts()


@pytest.fixture(scope="module")
def ascent(shipped_model, starts):
    """The exercise: every digit from both starts, 30 steps."""
    return optimize_input(shipped_model, DIGITS, starts, steps=30, lr=0.1)


def classify(model, images):
    """Predicted digit and its probability for images (..., 1, 28, 28)."""
    with torch.no_grad():
        probabilities = model(images.reshape(-1, 1, 28, 28)).softmax(1)
    confidence, predicted = probabilities.max(1)
    return predicted.view(images.shape[:-3]), confidence.view(images.shape[:-3])


def test_starts_are_uniform_random_and_all_ones_of_shape_1_1_28_28(starts):
    assert list(starts) == ["random", "ones"]
    assert all(start.shape == (1, 1, 28, 28) for start in starts.values())
    random = starts["random"]
    assert random.min() >= 0 and random.max() < 1 and random.std() > 0.25  # uniform: std 0.289
    assert torch.equal(starts["ones"], torch.ones(1, 1, 28, 28))
    with pytest.raises(ValueError, match=r"^make_start needs kind as one of random, ones, got 'zeros'$"):
        make_start("zeros")
    # the same seed gives the same random start
    assert torch.equal(both_starts(0)["random"], random) and not torch.equal(both_starts(1)["random"], random)


def test_forward_pass_returns_the_logit_of_one_neuron_for_one_image(shipped_model, starts):
    forward_pass = make_forward_pass(shipped_model)
    x = starts["random"][0]  # (1, 28, 28)
    logits = shipped_model(x.unsqueeze(0))[0].detach()
    for neuron in (0, 3, 9):
        torch.testing.assert_close(forward_pass(x, torch.tensor(neuron)), logits[neuron])


@pytest.mark.parametrize("seed", [1, 2])
def test_func_grad_equals_autograd(shipped_model, seed):
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    neurons = torch.tensor([0, 3, 9, 9, 5, 1])
    gradient = torch.vmap(torch.func.grad(make_forward_pass(shipped_model)))(x, neurons)

    # the reference: plain autograd on the same images, without torch.func
    leaf = x.clone().requires_grad_(True)
    chosen = shipped_model(leaf)[torch.arange(6), neurons]
    (expected,) = torch.autograd.grad(chosen.sum(), leaf)
    torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-5)
    assert gradient.abs().sum() > 0


def test_every_digit_from_both_starts_is_reached(shipped_model, ascent):
    assert ascent.images.shape == (2, 10, 1, 28, 28)
    assert ascent.logit.shape == ascent.probability.shape == (31, 2, 10)
    assert ascent.start_names == STARTS and ascent.neurons == DIGITS
    rise = ascent.logit[-1] - ascent.logit[0]
    assert rise.min() > 50, rise
    # the history is measured, not assumed: the final entry is the logit of the returned image
    final_logits = shipped_model(ascent.images.view(-1, 1, 28, 28)).view(2, 10, 10)
    torch.testing.assert_close(final_logits.diagonal(dim1=1, dim2=2), ascent.logit[-1], rtol=1e-4, atol=1e-3)
    predicted, confidence = classify(shipped_model, ascent.images)
    assert torch.equal(predicted, torch.arange(10).expand(2, 10))
    assert confidence.min() > 0.999
    # the start is not already the target (otherwise "reached" would prove nothing)
    assert ascent.probability[0].mean() < 0.5
    # the network becomes sure (p >= 0.99) after some steps, not at the start
    sure = (ascent.probability >= 0.99).float().argmax(0)  # (S, K) first sure step
    assert (sure > 0).sum() >= 15 and (ascent.probability[-1] >= 0.99).all()


def test_no_nan_or_inf_for_either_start(ascent):
    for tensor in (ascent.images, ascent.logit, ascent.probability):
        assert torch.isfinite(tensor).all()
    # what a step rule that divides by the spread of x would do with the all-ones start
    ones = torch.ones(1, 1, 28, 28)
    assert torch.isnan((ones - ones.mean()) / ones.std()).all()


def test_no_nan_with_zero_gradient_and_huge_steps(starts):
    # an all-zero network has a zero gradient everywhere: Adam must step by 0, not 0/0
    dead = CNN().eval()
    for p in dead.parameters():
        nn.init.zeros_(p)
    result = optimize_input(dead, DIGITS, starts, steps=3, lr=1e3)
    assert torch.isfinite(result.images).all() and torch.isfinite(result.logit).all()
    for s, start in enumerate(starts.values()):
        assert torch.equal(result.images[s], start.expand(10, 1, 28, 28))


def adam_by_hand(x, gradient, state, lr, betas=(0.9, 0.999), eps=1e-8):
    """The reference: one Adam step uphill written out, x + lr * m_hat / (sqrt(v_hat) + eps)."""
    beta1, beta2 = betas
    state["t"] += 1
    state["m"].mul_(beta1).add_(gradient, alpha=1 - beta1)
    state["v"].mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
    m_hat = state["m"] / (1 - beta1 ** state["t"])
    v_hat = state["v"] / (1 - beta2 ** state["t"])
    return x + lr * m_hat / (v_hat.sqrt() + eps)


def test_the_ascent_is_adam_uphill_for_any_gradient_scale_and_a_zero_gradient(monkeypatch):
    """optimize_input's torch.optim.Adam(maximize=True) loop equals Adam written out by hand, with gradients
    from 1 to 1e5 and an all-zero one (which must step by zero, not 0/0)."""
    generator = torch.Generator().manual_seed(2)
    starts = {"a": torch.rand(1, 1, 28, 28, generator=generator), "b": torch.rand(1, 1, 28, 28, generator=generator)}
    gradients = []

    def scripted_grads(x, neurons):
        gradient = torch.randn(x.shape, generator=generator) * 10.0 ** len(gradients)  # scales from 1 to 1e5
        gradient[0] = 0  # a zero gradient must give a zero step, not 0/0
        gradients.append(gradient)
        return gradient.clone()

    monkeypatch.setattr(input_opt, "vmap", lambda function: scripted_grads)
    result = optimize_input(CNN().eval(), (3,), starts, steps=6, lr=0.05)
    x = torch.cat(list(starts.values()))  # (2, 1, 28, 28)
    state = {"m": torch.zeros_like(x), "v": torch.zeros_like(x), "t": 0}
    for gradient in gradients:
        x = adam_by_hand(x, gradient, state, lr=0.05)
    assert len(gradients) == 6
    torch.testing.assert_close(result.images[:, 0], x)
    assert torch.isfinite(result.images).all()
    assert torch.equal(result.images[0, 0], starts["a"][0])


def test_pixels_the_network_cannot_see_keep_their_start(ascent, starts):
    # the second pooling (11 -> 5) drops the last row and column of its input, so the last two
    # rows and columns of the image never reach the output: their gradient is exactly zero
    for s, start in enumerate(starts.values()):
        assert torch.equal(ascent.images[s, :, :, 26:, :], start[:, :, 26:, :].expand(10, 1, 2, 28))
        assert torch.equal(ascent.images[s, :, :, :, 26:], start[:, :, :, 26:].expand(10, 1, 28, 2))
    first = torch.cat(list(starts.values()))[:, None]  # (S, 1, 1, 28, 28)
    assert (ascent.images[:, :, :, :26, :26] != first[:, :, :, :26, :26]).float().mean() > 0.9
    assert ascent.images.abs().max() > 3  # free pixels leave [0, 1] after 30 steps already


def test_optimize_input_raises_floating_point_error_when_the_objective_overflows(shipped_model, starts):
    with pytest.raises(FloatingPointError, match=r"^gradient ascent broke down at step \d+: the objective became NaN"):
        optimize_input(shipped_model, (3,), starts, steps=5, lr=1e37)
    # (torch.optim.Adam itself refuses a step size beyond float32, lr=1e38 at step 1; --lr stops at 100)
    with pytest.raises(RuntimeError, match="overflow"):
        optimize_input(shipped_model, (3,), starts, steps=5, lr=1e38)


# ------------------------------------------------------------------ the table and the figures


def made_up_ascent(steps=4, seed=0):
    """An Ascent for 2 starts and 3 digits with pixels in about [-2, 3]."""
    generator = torch.Generator().manual_seed(seed)
    logit = torch.rand(steps + 1, 2, 3, generator=generator).cumsum(0) * 10
    probability = torch.linspace(0.1, 1.0, steps + 1)[:, None, None].expand(steps + 1, 2, 3).clone()
    images = torch.rand(2, 3, 1, 28, 28, generator=generator) * 5 - 2
    return Ascent(images, STARTS, (3, 5, 8), logit, probability)


def test_table_has_a_row_per_digit_with_the_final_logit_and_probability_per_start():
    result = made_up_ascent()
    lines = format_table(result).splitlines()
    assert "random start" in lines[0] and "ones start" in lines[0]
    assert "logit y_i" in lines[1] and "p_i" in lines[1]
    rows = lines[2:]
    assert [row.split("|")[0].strip() for row in rows] == ["3", "5", "8"]
    cells = rows[1].split("|")[2].split()  # digit 5, ones start
    assert cells == [f"{result.logit[-1, 1, 1].item():.1f}", f"{result.probability[-1, 1, 1].item():.6f}"]


@pytest.mark.usefixtures("close_figures")
def test_grid_has_its_title_and_shows_unbounded_optima_on_a_diverging_scale_centered_at_zero():
    result = made_up_ascent()
    fig = plot_grid(result, "inputs that maximize a logit")
    assert fig._suptitle.get_text() == "inputs that maximize a logit"
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6  # one per start and digit
    bound = result.images.abs().max().item()
    for ax in images:
        vmin, vmax = ax.images[0].get_clim()
        assert vmin == -vmax == pytest.approx(-bound)
        assert ax.images[0].get_cmap().name.startswith("RdBu")
    # a colour bar that names its quantity
    bar = next(ax for ax in fig.axes if not ax.images)
    assert "pixel value" in bar.get_ylabel()
    # the label describes this red-blue scale (white is 0), not MNIST's black-and-white rendering
    assert "white 0" in bar.get_ylabel() and "black" not in bar.get_ylabel()
    assert [ax.get_title() for ax in images[:3]] == ["digit 3", "digit 5", "digit 8"]
    assert [images[0].get_ylabel(), images[3].get_ylabel()] == ["random start", "ones start"]
    # below each image its final logit and probability
    assert images[1].get_xlabel() == f"y={result.logit[-1, 0, 1]:.0f}, p={result.probability[-1, 0, 1]:.3f}"


@pytest.mark.usefixtures("close_figures")
def test_curves_have_a_title_axis_labels_and_one_line_per_digit():
    result = made_up_ascent(steps=12)
    fig = plot_curves(result, "gradient ascent")
    assert fig._suptitle.get_text() == "gradient ascent"
    axes = fig.axes
    assert len(axes) == 2 * len(STARTS)
    logit, probability = axes[0], axes[1]
    assert logit.get_title() and probability.get_title()
    assert all(ax.get_xlabel().startswith("step") and ax.get_ylabel() for ax in axes)
    assert len(logit.lines) == len(probability.lines) == 3
    for k, line in enumerate(logit.lines):
        assert list(line.get_ydata()) == result.logit[:, 0, k].tolist()
    for k, line in enumerate(axes[3].lines):  # ones start, probability
        assert list(line.get_ydata()) == result.probability[:, 1, k].tolist()
    assert probability.get_ylim() == (-0.02, 1.02) and probability.get_xscale() == "symlog"
    assert probability.get_xlim() == (0, 12)


# ------------------------------------------------------------------ the command line


def test_parser_defaults_and_bad_values(capsys):
    parser = build_parser()
    args = parser.parse_args([])
    assert args.neuron == DIGITS and args.init == "both" and args.steps == 100 and args.lr == 0.1
    assert args.weights == WEIGHTS_PATH and args.out == OUTPUTS_DIR / "input_opt" and args.threads == 1
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
        ("--threads", "10000000000"): "must be an integer from 1 to 1024, got 10000000000",
        ("--init", "zeros"): "invalid choice: 'zeros'",
        # numpy's generator takes seeds 0 to 2**32 - 1; a negative one was a traceback
        ("--seed", "-1"): "must be an integer from 0 to 4294967295, got -1",
        # the regularizers belong to `python -m iml input-opt-regularized`
        ("--l2", "0.1"): "unrecognized arguments: --l2",
    }
    for argv, message in bad.items():
        assert message in argparse_error(parser, argv, capsys)


def test_main_writes_figures_and_table_and_names_the_way_further(tmp_path, monkeypatch, capsys):
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
    assert "random start" in out and "ones start" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("4 |")]
    assert len(rows) == 1  # one table row: the digit, with both starts
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["input_opt_curves.png", "input_opt_grid.png"]
    assert all((tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in names)
    assert out.strip().splitlines()[-1].startswith(f"further: `{FURTHER}`")
    assert FURTHER == "python -m iml input-opt-regularized"


def test_the_script_imports_only_util_and_models_from_the_project_at_module_level():
    import ast

    tree = ast.parse(input_opt.__loader__.get_source("input_opt"))
    project = {"util", "models", "iml", "input_opt", "mnist_integrated", "deepfake_interpretation"}
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = {(node.module or "").split(".")[0] for node in top if isinstance(node, ast.ImportFrom)}
    names |= {alias.name.split(".")[0] for node in top if isinstance(node, ast.Import) for alias in node.names}
    assert names & project == {"models"}


def test_broken_weights_give_one_sentence(tmp_path):
    missing = tmp_path / "missing.pth"
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(WEIGHTS_PATH.read_bytes()[:5000])
    foreign = tmp_path / "foreign.pth"
    torch.save(
        {"format": 1, "model": torch.nn.Linear(4, 2).state_dict(), "config": {}}, foreign
    )  # save_checkpoint refuses it
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
        input_opt.run(input_opt.build_parser().parse_args())
    assert old.read_bytes() == b"previous figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input_opt_grid.png"]


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
    # main() ends a user's error with exit status 1 (cli.run_main); run_cli wants the error itself
    script = types.SimpleNamespace(
        __name__="input_opt", main=lambda: input_opt.run(input_opt.build_parser().parse_args())
    )
    outcome = run_cli(script, prefix + argv, monkeypatch)
    if not argv:
        assert outcome == "ran" and len(list(out.glob("*.png"))) == 2
