"""src/mnist_integrated.py: the exercise's `integrate_gradients`, its figures, and the Task 2 script.

The properties of Integrated Gradients itself (completeness, Captum's numbers, one output per image)
are checked here for the exercise's function and its fast twin `integrated_fast.integrate_gradients_fast`
with the exercise's black baseline and right sum; the twin's other rules and baselines are checked in
tests/iml/test_integrated_fast.py.
"""

import ast
import inspect
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402
from conftest import (  # noqa: E402
    FUZZ,
    argparse_error,
    argument_lists,
    cnn_turning_nan,
    linear_model,
    run_cli,
    run_script,
    smooth_model,
)
from hypothesis import example, given  # noqa: E402

import mnist_integrated  # noqa: E402
from iml import cli, integrated_fast  # noqa: E402
from iml.attribution import completeness_gap  # noqa: E402
from iml.common import ROOT, WEIGHTS_PATH  # noqa: E402
from iml.integrated_fast import fast_twin, integrate_gradients_fast  # noqa: E402
from iml.mnist_cnn import get_model  # noqa: E402
from mnist_integrated import build_parser, integrate_gradients, plot_attributions, plot_class_means  # noqa: E402
from models import load_cnn  # noqa: E402

IMPLEMENTATIONS = {"exercise": integrate_gradients, "fast": integrate_gradients_fast}
each_implementation = pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())


def captum_ig(net, x, target, m, method="riemann_right", baseline=None):
    baseline = torch.zeros_like(x) if baseline is None else baseline
    return IntegratedGradients(net).attribute(x, baselines=baseline, target=target, n_steps=m, method=method)


# ------------------------------------------------------------------ Integrated Gradients


def test_integrate_gradients_is_the_exercise_formula_with_autograd(model64, digits):
    x, labels = digits[0][:2].double(), digits[1][:2]
    m = 5
    expected = torch.zeros_like(x)
    for i in range(len(x)):
        for k in range(1, m + 1):
            point = (k / m * x[i])[None].requires_grad_()  # x' + k/m (x - x') with x' = 0
            (gradient,) = torch.autograd.grad(model64(point)[0, labels[i]], point)
            expected[i] += gradient[0] / m
    expected *= x
    torch.testing.assert_close(integrate_gradients(model64, x, labels, m), expected)


def test_the_fast_twin_equals_the_exercise_function_in_float64(model64, mnist_test):
    """--fast runs `fast_twin`: on real digits, each explained for another output too, it gives the same numbers."""
    images, labels = mnist_test
    x = images[:12].unsqueeze(1).double() / 255  # (12, 1, 28, 28)
    targets = labels[:12].clone()
    targets[::3] = (targets[::3] + 4) % 10
    exercise = integrate_gradients(model64, x, targets, 40)
    for fast in (fast_twin(), lambda *a: integrate_gradients_fast(*a, batch_points=7)):
        twin = fast(model64, x, targets, 40)
        assert twin.dtype == torch.float64 and twin.shape == x.shape
        assert float((twin - exercise).abs().max() / exercise.abs().max()) < 1e-10


@each_implementation
def test_completeness_is_exact_for_a_linear_model(implementation, digits):
    net = linear_model()
    x = digits[0].double()
    attributions = implementation(net, x, 3, 4)
    weight = net[1].weight[3].detach().view(1, 1, 28, 28)
    torch.testing.assert_close(attributions, x * weight)
    assert completeness_gap(net, x, attributions, 3).abs().max() < 1e-12


@each_implementation
def test_completeness_tightens_as_m_grows_for_a_smooth_model(implementation, digits):
    net = smooth_model()
    x, labels = digits[0].double(), digits[1]
    with torch.no_grad():
        change = net(x).gather(1, labels[:, None]).squeeze(1) - net(torch.zeros_like(x))[0, labels]

    def relative_gap(m):
        attributions = implementation(net, x, labels, m)
        return float((completeness_gap(net, x, attributions, labels).abs() / change.abs()).max())

    right = [relative_gap(m) for m in (8, 32, 128)]
    assert right[0] > 4 * right[1] > 16 * right[2] > 0  # first order: the gap falls like 1/m
    assert right[2] < 2e-2


@each_implementation
def test_output_digit_may_be_one_int_or_one_per_image(implementation, model64, digits):
    x = digits[0][:3].double()
    one = implementation(model64, x, 7, 10)
    each = implementation(model64, x, torch.tensor([7, 7, 7]), 10)
    torch.testing.assert_close(one, each)
    mixed = implementation(model64, x, torch.tensor([7, 1, 7]), 10)
    torch.testing.assert_close(mixed[[0, 2]], one[[0, 2]])
    assert not torch.allclose(mixed[1], one[1])


@each_implementation
def test_attributions_keep_the_dtype_and_shape_of_the_images(implementation, shipped_model, digits):
    x, labels = digits[0][:2], digits[1][:2]
    attributions = implementation(shipped_model, x, labels, 4)
    assert attributions.shape == x.shape and attributions.dtype == torch.float32


@each_implementation
def test_agrees_with_captum(implementation, model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    targets = torch.tensor([labels[0].item(), 4, labels[2].item()])  # explained and unexplained digits
    ours = implementation(model64, x, targets, 16)
    theirs = captum_ig(model64, x, targets, 16)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))


def test_a_network_in_training_mode_is_refused(shipped_model, digits):
    import copy

    net = copy.deepcopy(shipped_model).train()
    with pytest.raises(ValueError, match=r"^CNN is in training mode; call model\.eval\(\) first$"):
        integrate_gradients(net, digits[0][:2], digits[1][:2], 2)


# ------------------------------------------------------------------ the figures


def signed_maps(fig):
    """The images drawn with the diverging colour map."""
    return [image for ax in fig.axes for image in ax.get_images() if image.get_cmap().name == "RdBu_r"]


def assert_centered_at_zero(image):
    norm = image.norm
    assert norm.vmax > 0 and norm.vmin == -norm.vmax, (norm.vmin, norm.vmax)


def made_up_digits(labels, seed=0):
    """Images (N, 1, 28, 28) in [0, 1] and attributions (N, 1, 28, 28) for the digits `labels`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(len(labels), 1, 28, 28, generator=generator), torch.randn(
        len(labels), 1, 28, 28, generator=generator
    )


@pytest.mark.usefixtures("close_figures")
def test_plot_attributions_puts_every_digit_on_one_scale_centered_at_zero_and_names_missing_classes():
    labels = torch.tensor([3, 3, 7, 1, 3])
    images, attributions = made_up_digits(labels)
    attributions[2] *= 10  # one loud digit: a robust limit keeps the others readable, arrows mark the clipped
    fig = plot_attributions(images, attributions, labels, "IG of five digits", per_class=2)
    title = fig.get_suptitle()
    assert title.startswith("IG of five digits")
    assert "no digit of class 0, 2, 4, 5, 6, 8, 9 was explained" in " ".join(title.split())
    shown = signed_maps(fig)
    assert len(shown) == 4  # one attribution per digit drawn: the 1, two of the three 3s, the 7
    drawn = attributions[[3, 0, 1, 2]]
    limit = np.percentile(drawn.abs().flatten().numpy(), 99.5)
    for image in shown:
        assert_centered_at_zero(image)
        assert image.norm.vmax == pytest.approx(limit, rel=1e-6)
    (bar,) = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]  # one bar for all
    assert bar.get_ylabel().startswith("attribution") and bar.get_ylabel().count("red") == 1
    assert bar._colorbar.extend == "both"  # pointed ends: the loud 7 reaches beyond the limit
    labels_drawn = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel().startswith("digit")]
    assert labels_drawn == [f"digit {c}" + ("\n(only 1)" if c in (1, 7) else "") for c in range(10)]


@pytest.mark.parametrize("per_class, classes_in_a_row", [(1, 5), (2, 2), (3, 2), (5, 1), (6, 1)])
def test_the_attribution_grid_fills_its_rows_for_few_and_many_digits_per_class(per_class, classes_in_a_row):
    from iml.integrated_plots import classes_per_row

    assert classes_per_row(per_class) == classes_in_a_row
    assert 10 % classes_in_a_row == 0  # ten classes, no ragged last row


@pytest.mark.usefixtures("close_figures")
@pytest.mark.parametrize("per_class", [2, 5, 8])
def test_plot_attributions_draws_what_the_script_explains_by_default(per_class):
    labels = torch.arange(10).repeat_interleave(per_class)
    fig = plot_attributions(*made_up_digits(labels), labels, "IG")  # as run() calls it: no per_class
    shown = min(per_class, 6)
    assert len(signed_maps(fig)) == 10 * shown
    assert (f"the first 6 of up to {per_class} digits per class" in " ".join(fig.get_suptitle().split())) == (
        per_class > 6
    )
    width, height = fig.get_size_inches()
    assert 6 < width < 18 and height < 20  # neither ragged nor endless


@pytest.mark.usefixtures("close_figures")
def test_plot_class_means_uses_one_scale_centered_at_zero():
    digits = torch.tensor([0, 0, 5, 9])
    attributions = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fig = plot_class_means(attributions, digits, "Mean IG per digit")
    assert fig.get_suptitle().startswith("Mean IG per digit")
    assert "no digit of class 1, 2, 3, 4, 6, 7, 8 was explained" in " ".join(fig.get_suptitle().split())
    shown = signed_maps(fig)
    assert len(shown) == 3
    means = torch.stack([attributions[digits == c].mean(0) for c in (0, 5, 9)])
    for image in shown:
        assert_centered_at_zero(image)
        assert image.norm.vmax == pytest.approx(float(means.abs().max()))
    assert [ax.get_title() for ax in fig.axes[:3]] == ["digit 0 (2 images)", "digit 5 (1 image)", "digit 9 (1 image)"]


@pytest.mark.usefixtures("close_figures")
def test_the_title_of_one_class_mean_does_not_overlap_its_panel():
    fig = plot_class_means(
        torch.randn(1, 1, 28, 28), torch.tensor([8]), "Mean attribution per digit (1 MNIST test digit)"
    )
    fig.canvas.draw()
    (panel,) = [ax for ax in fig.axes if ax.images]
    assert (
        panel.get_title() == "digit 8 (1 image)"
        and fig.get_suptitle() == "Mean attribution per digit (1 MNIST test digit)"
    )
    renderer = fig.canvas.get_renderer()
    suptitle, title = fig._suptitle.get_window_extent(renderer), panel.title.get_window_extent(renderer)
    assert suptitle.y0 > title.y1  # the figure's title sits wholly above the panel's
    assert suptitle.x0 >= 0 and suptitle.x1 <= fig.bbox.width  # and fits the figure


# ------------------------------------------------------------------ the command line


def test_parser_rejects_bad_values(capsys):
    parser = build_parser()
    bad = {
        ("--steps", "0"): "must be an integer from 1 to 2000, got 0",
        ("--steps", "1000000000000"): "must be an integer from 1 to 2000, got 1000000000000",
        ("--per-class", "1001"): "must be an integer from 1 to 1000, got 1001",
        ("--per-class", "x"): "'x' is not an integer",
    }
    for arguments, message in bad.items():
        assert message in argparse_error(parser, arguments, capsys)
    args = parser.parse_args([])
    assert (args.per_class, args.steps, args.fast, args.compile) == (2, 100, False, False)
    # the options beyond the exercise moved to `python -m iml ig` (tests/iml/test_ig_command.py)
    for moved in ("--rule", "--baseline", "--digit", "--smoothgrad", "--batch-points", "--precision"):
        assert "unrecognized arguments" in argparse_error(parser, [moved, "1"], capsys)


def test_parser_rejects_bad_training_values(capsys):
    parser = build_parser()
    errors = [
        argparse_error(parser, bad, capsys) for bad in (["--epochs", "0"], ["--batch-size", "-3"], ["--lr", "nan"])
    ]
    assert "must be an integer from 1 to" in "".join(errors)
    args = parser.parse_args([])
    assert (args.epochs, args.batch_size, args.lr, args.val_size, args.train_size) == (4, 128, 3e-3, 5000, 0)
    assert args.weights is None and not args.retrain  # data/weights.pth, or with --retrain weights_retrained.pth


def test_nan_during_training_stops_and_writes_no_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_integrated, "CNN", cnn_turning_nan(after_calls=5))
    weights = tmp_path / "weights.pth"
    args = build_parser().parse_args(
        ["--retrain", "--train-size", "2000", "--val-size", "0", "--epochs", "1", "--weights", str(weights)]
    )
    with pytest.raises(cli.UserError, match=r"training diverged: the loss became nan in epoch 1, batch 5; lower --lr"):
        get_model(args, torch.device("cpu"), mnist_integrated.train_model)
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
    result = run_script("mnist_integrated.py", "--per-class", 1, "--steps", 8, "--device", "cpu", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test accuracy 99.43% on 10000 test digits" in result.stdout
    assert "completeness gap |sum of attributions - (F(x) - F(x'))|" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ig_attributions.png", "ig_class_means.png"]
    assert result.stdout.strip().splitlines()[-1] == (
        "further: python -m iml ig --help; python -m iml ig-checks; python -m iml ig-exact"
    )


def test_the_default_run_calls_integrate_gradients_and_fast_calls_the_twin(tmp_path, monkeypatch, capsys):
    """A profiler sees the exercise's function in the default run, and the twin only with --fast."""
    calls = []
    monkeypatch.setattr(mnist_integrated, "integrate_gradients", lambda *a: calls.append("exercise") or a[1] * 0)
    monkeypatch.setattr(
        integrated_fast, "integrate_gradients_fast", lambda *a, **k: calls.append(("fast", k)) or a[1] * 0
    )
    for extra in ([], ["--fast"], ["--fast", "--compile"]):
        argv = ["--per-class", "1", "--steps", "2", "--device", "cpu", "--out", str(tmp_path), *extra]
        assert run_cli(mnist_integrated, argv, monkeypatch) == "ran"
    assert calls == ["exercise", ("fast", {"compile": False}), ("fast", {"compile": True})]
    assert "completeness" in capsys.readouterr().out


def test_script_explains_a_failing_compile(tmp_path):
    # no C++ compiler, and an empty cache, so that nothing compiled earlier is reused
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "figures"
    result = subprocess.run(
        [sys.executable, str(ROOT / "src" / "mnist_integrated.py"), "--fast", "--compile", "--per-class", "1"]
        + ["--steps", "4", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: torch.compile failed (InvalidCxxCompiler: No working C++ compiler")
    assert result.stderr.endswith(
        "it needs a C++ compiler on a CPU and Triton on a GPU: install one, or run without --compile.\n"
    )
    assert not out.exists() or not list(out.iterdir())


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
        {"--weights", "--out", "--retrain", "--per-class", "--steps", "--epochs", "--compile"},
    )
)
def test_fuzz_mnist_integrated(argv, fuzz_weights, tmp_path_factory, monkeypatch):
    """Every argument list ends in a result, an argparse error or one sentence, never in a traceback."""
    out = tmp_path_factory.mktemp("out")
    prefix = ["--weights", str(fuzz_weights), "--out", str(out), "--per-class", "1", "--steps", "2"]
    before = fuzz_weights.read_bytes()
    # main() ends a user error in one line and exit 1 (cli.run_main); run() is what it wraps, which raises it
    script = SimpleNamespace(
        __name__="mnist_integrated", main=lambda: mnist_integrated.run(build_parser().parse_args())
    )
    outcome = run_cli(script, prefix + argv, monkeypatch)
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


def test_the_exercise_function_is_short_and_the_readme_shows_it_as_it_is():
    code = integrate_gradients_code()
    assert len([line for line in code[1:] if line.strip()]) <= 25
    readme = (ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    shown = next(block for block in blocks if "def integrate_gradients(" in block).rstrip("\n").splitlines()
    assert shown == code
