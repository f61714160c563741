import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

import util
from attribution import area_under_curve, cascading_randomisations, deletion_curve, randomisation_test, spearman
from mnist_integrated import (
    CAPTUM_METHODS,
    RULES,
    ChannelsLast,
    blurred,
    build_parser,
    completeness_gap,
    input_gradients,
    integrate_gradients,
    integrated_gradients_averaged,
    make_baselines,
    pad_to_multiple,
    precision_deviation,
    quadrature,
    smooth_grad,
    split_affine_head,
    to_float_images,
)


@pytest.fixture(scope="module")
def model64(shipped_model):
    """The shipped CNN in float64, for comparisons at 1e-6."""
    import copy

    return copy.deepcopy(shipped_model).double()


@pytest.fixture(scope="module")
def digits(mnist_test):
    """Six real test digits (N, 1, 28, 28) in [0, 1] and their labels."""
    images, labels = mnist_test
    return to_float_images(images[:6], "cpu"), labels[:6]


def linear_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double()


def smooth_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).double()


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_rules_integrate_polynomials(rule):
    alphas, weights = quadrature(rule, 8)
    assert alphas.shape == weights.shape == (8,)
    assert alphas.min() >= 0 and alphas.max() <= 1
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # integral_0^1 a^2 = 1/3: Gauss-Legendre is exact up to degree 2m - 1, the others are not
    error = abs(float(weights @ alphas**2) - 1 / 3)
    expected = {"right": 25 / 384, "left": 23 / 384, "midpoint": 1 / 768, "trapezoid": 1 / 294, "gausslegendre": 0.0}
    assert error == pytest.approx(expected[rule], abs=1e-12)


def test_right_rule_is_the_exercise_sum():
    alphas, weights = quadrature("right", 300)
    torch.testing.assert_close(alphas, torch.arange(1, 301, dtype=torch.float64) / 300)
    assert torch.all(weights == 1 / 300)
    with pytest.raises(util.UserError, match=r"the trapezoid rule needs at least 2 steps, got 1; use --steps 2"):
        quadrature("trapezoid", 1)


def test_split_affine_head_reproduces_the_network(shipped_model, digits):
    x, _ = digits
    head, body = split_affine_head(shipped_model)
    torch.testing.assert_close(body(head(x)), shipped_model(x))
    # a head that is affine: head(a x + (1 - a) y) = a head(x) + (1 - a) head(y)
    y = torch.rand_like(x)
    torch.testing.assert_close(head(0.3 * x + 0.7 * y), 0.3 * head(x) + 0.7 * head(y), atol=1e-5, rtol=1e-5)


def test_channels_last_keeps_the_values_and_changes_the_layout():
    x = torch.randn(3, 32, 26, 26)
    y = ChannelsLast()(x)
    assert torch.equal(y, x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(memory_format=torch.channels_last)
    # and so under vmap, where `contiguous(memory_format=...)` is not supported
    batched = torch.func.vmap(ChannelsLast())(x[None])
    assert torch.equal(batched, x[None])


@pytest.mark.parametrize("rule", RULES)
def test_completeness_is_exact_for_a_linear_model(rule, digits):
    net = linear_model()
    x = digits[0].double()
    baseline = torch.rand_like(x)
    attributions = integrate_gradients(net, x, 3, steps_m=4, baseline=baseline, rule=rule)
    weight = net[1].weight[3].detach().view(1, 1, 28, 28)
    torch.testing.assert_close(attributions, (x - baseline) * weight)
    assert completeness_gap(net, x, attributions, 3, baseline).abs().max() < 1e-12


def test_completeness_tightens_as_m_grows_for_a_smooth_model(digits):
    net = smooth_model()
    x, labels = digits[0].double(), digits[1]
    with torch.no_grad():
        change = net(x).gather(1, labels[:, None]).squeeze(1) - net(torch.zeros_like(x))[0, labels]

    def relative_gap(rule, m):
        attributions = integrate_gradients(net, x, labels, steps_m=m, rule=rule)
        return float((completeness_gap(net, x, attributions, labels).abs() / change.abs()).max())

    right = [relative_gap("right", m) for m in (8, 32, 128)]
    assert right[0] > 4 * right[1] > 16 * right[2] > 0  # first order: the gap falls like 1/m
    assert right[2] < 2e-2
    trapezoid = [relative_gap("trapezoid", m) for m in (8, 32)]
    assert trapezoid[1] < trapezoid[0] / 8  # second order: 1/m^2
    assert relative_gap("gausslegendre", 16) < 1e-9


def test_chunk_size_does_not_change_the_result(model64, digits):
    x, labels = digits[0][:5].double(), digits[1][:5]
    reference = integrate_gradients(model64, x, labels, steps_m=20, batch_points=10_000)
    # 1: one step at a time; 7: chunks of steps; 20, 33: whole images, the last chunk short
    for batch_points in (1, 7, 20, 33):
        result = integrate_gradients(model64, x, labels, steps_m=20, batch_points=batch_points)
        torch.testing.assert_close(result, reference, rtol=1e-10, atol=1e-12)


def test_output_digit_may_be_one_int_or_one_per_image(model64, digits):
    x = digits[0][:3].double()
    one = integrate_gradients(model64, x, 7, steps_m=10)
    each = integrate_gradients(model64, x, torch.tensor([7, 7, 7]), steps_m=10)
    torch.testing.assert_close(one, each)
    mixed = integrate_gradients(model64, x, torch.tensor([7, 1, 7]), steps_m=10)
    torch.testing.assert_close(mixed[[0, 2]], one[[0, 2]])
    assert not torch.allclose(mixed[1], one[1])


def test_pad_to_multiple():
    values = torch.arange(5.0)
    assert pad_to_multiple(values, 5) is values
    assert pad_to_multiple(values, 3).tolist() == [0, 1, 2, 3, 4, 4]
    assert pad_to_multiple(values, 4, fill=0.0).tolist() == [0, 1, 2, 3, 4, 0, 0, 0]
    rows = torch.arange(6.0).view(3, 2)
    assert pad_to_multiple(rows, 2).tolist() == [[0, 1], [2, 3], [4, 5], [4, 5]]


# (images, steps m, batch points): 5 images, 3 per chunk, the last chunk padded with copies of
# the last image; 2 images, 7 steps in chunks of 4, the last chunk padded with weight-0 steps
COMPILE_CASES = [(5, 7, 21), (2, 7, 4)]


@pytest.mark.parametrize(("count", "steps", "batch_points"), COMPILE_CASES)
def test_compiled_path_equals_the_eager_one(count, steps, batch_points, shipped_model, digits):
    x, labels = digits[0][:count], digits[1][:count]
    options = {"steps_m": steps, "batch_points": batch_points}
    eager = integrate_gradients(shipped_model, x, labels, **options)
    compiled = integrate_gradients(shipped_model, x, labels, compile=True, **options)
    assert compiled.shape == eager.shape
    # float32: the fused kernels add up in another order
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4 * float(eager.abs().max()))


def test_precision_deviation():
    exact = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    largest, median = precision_deviation(exact * torch.tensor([[1.01], [1.03]]), exact)
    assert largest == pytest.approx(0.03)  # 4 * 0.03 / 4
    assert median == pytest.approx(0.01)  # torch's median of two values is the lower one


def captum_ig(net, x, target, m, method, baseline):
    return IntegratedGradients(net).attribute(x, baselines=baseline, target=target, n_steps=m, method=method)


@pytest.mark.parametrize("rule", list(CAPTUM_METHODS))
def test_agrees_with_captum(rule, model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    targets = torch.tensor([labels[0].item(), 4, labels[2].item()])  # explained and unexplained digits
    for baseline in (torch.zeros_like(x), blurred(x)):
        ours = integrate_gradients(model64, x, targets, steps_m=16, baseline=baseline, rule=rule)
        theirs = captum_ig(model64, x, targets, 16, CAPTUM_METHODS[rule], baseline)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))


def test_captum_trapezoid_weights_sum_to_less_than_one(model64, digits):
    m = 12
    # the installed Captum: m nodes at linspace(0, 1, m), weights 1/m with halved ends
    step_sizes, alphas = approximation_parameters("riemann_trapezoid")
    np.testing.assert_allclose(alphas(m), np.linspace(0, 1, m), atol=1e-7)
    assert sum(step_sizes(m)) == pytest.approx((m - 1) / m)
    x, labels = digits[0][:4].double(), digits[1][:4]
    ours = integrate_gradients(model64, x, labels, steps_m=m, rule="trapezoid")
    theirs = captum_ig(model64, x, labels, m, "riemann_trapezoid", torch.zeros_like(x))
    torch.testing.assert_close(ours, theirs * m / (m - 1), rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))
    our_gap = completeness_gap(model64, x, ours, labels).abs()
    their_gap = completeness_gap(model64, x, theirs, labels).abs()
    assert our_gap.median() < their_gap.median()


def test_input_gradients_agree_with_captum_saliency(model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    theirs = Saliency(model64).attribute(x.clone().requires_grad_(), target=labels, abs=False)
    torch.testing.assert_close(input_gradients(model64, x, labels), theirs)


def test_baselines(digits):
    x = digits[0][:2]
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(make_baselines("black", x), torch.zeros_like(x))
    blur = make_baselines("blur", x)
    assert blur.shape == x.shape and blur.min() >= 0 and blur.max() < x.max()
    assert abs(float(blur.sum() - x.sum())) < 0.1 * float(x.sum())  # a blur moves ink, it keeps most of it
    noise = make_baselines("noise", x, draws=3, generator=generator)
    assert noise.shape == (3, *x.shape) and noise.min() >= 0 and noise.max() <= 1
    assert not torch.equal(noise[0], noise[1])
    with pytest.raises(ValueError, match="unknown baseline 'white'"):
        make_baselines("white", x)


def test_averaging_over_noise_baselines_keeps_completeness(digits):
    net = linear_model()
    x = digits[0][:3].double()
    noise = make_baselines("noise", x, draws=4, generator=torch.Generator().manual_seed(1))
    attributions = integrated_gradients_averaged(net, x, 2, noise, steps_m=3)
    torch.testing.assert_close(attributions, (x - noise.mean(0)) * net[1].weight[2].detach().view(1, 1, 28, 28))
    assert completeness_gap(net, x, attributions, 2, noise).abs().max() < 1e-12


def test_smooth_grad_of_a_linear_model_is_its_gradient(digits):
    net = linear_model()
    x = digits[0][:2].double()
    generator = torch.Generator().manual_seed(0)
    smoothed = smooth_grad(lambda images: input_gradients(net, images, 5), x, samples=3, generator=generator)
    torch.testing.assert_close(smoothed, net[1].weight[5].detach().view(1, 1, 28, 28).expand_as(x))
    # for a nonlinear model the noise matters
    net = smooth_model()
    smoothed = smooth_grad(lambda images: input_gradients(net, images, 5), x, samples=3, generator=generator)
    assert not torch.allclose(smoothed, input_gradients(net, x, 5))


def test_spearman():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(3, 50, generator=generator)
    torch.testing.assert_close(spearman(a, a.exp()), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, -(a**3)), -torch.ones(3, dtype=torch.float64))
    b = torch.randn(3, 50, generator=generator)
    ranks = a.argsort(1).argsort(1).double(), b.argsort(1).argsort(1).double()
    expected = [np.corrcoef(ranks[0][i], ranks[1][i])[0, 1] for i in range(3)]
    np.testing.assert_allclose(spearman(a, b).numpy(), expected, rtol=1e-12)
    mask = torch.zeros(3, 50, dtype=torch.bool)
    mask[:, :10] = True
    torch.testing.assert_close(spearman(a, b, mask), spearman(a[:, :10], b[:, :10]))


def test_cascading_randomisation_leaves_the_model_alone(shipped_model):
    before = {k: v.clone() for k, v in shipped_model.state_dict().items()}
    stages = list(cascading_randomisations(shipped_model, seed=0))
    assert [name for name, _ in stages] == ["classifier.3", "classifier.1", "features.6", "features.3", "features.0"]
    for k, v in shipped_model.state_dict().items():
        assert torch.equal(v, before[k])
    last = stages[-1][1].state_dict()
    assert all(not torch.equal(last[k], before[k]) for k in before)


def test_randomisation_test_tells_the_trained_model_from_random_ones(shipped_model, digits):
    x, labels = digits

    def explain(net, images, targets):
        return integrate_gradients(net, images, targets, steps_m=16)

    stages, correlations, maps = randomisation_test(shipped_model, explain, x, labels, mask=x != 0)
    assert stages[0] == "trained" and len(stages) == 6
    assert correlations.shape == (6, len(x)) and maps.shape == (6, *x.shape)
    torch.testing.assert_close(correlations[0], torch.ones(len(x), dtype=torch.float64))
    mean = correlations.mean(1)
    assert mean[-1] < 0.7, mean  # all weights random: a different ranking
    assert mean[1:].max() < 0.85, mean  # already the random logit layer changes the map


def test_deletion_curve_ranks_ig_above_random(shipped_model, digits):
    x, labels = digits
    fractions = torch.linspace(0, 0.2, 11)
    probabilities = {
        name: deletion_curve(shipped_model, x, labels, scores, fractions)
        for name, scores in (
            ("ig", integrate_gradients(shipped_model, x, labels, steps_m=32)),
            ("random", torch.rand(x.shape, generator=torch.Generator().manual_seed(0))),
        )
    }
    start = shipped_model(x).softmax(1).gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(probabilities["ig"][:, 0], start)
    auc = {name: area_under_curve(fractions, p).mean() for name, p in probabilities.items()}
    assert auc["ig"] < 0.5 < auc["random"], auc
    assert math.isclose(area_under_curve(fractions, torch.ones(1, 11)).item(), 1.0)


def test_parser_rejects_bad_values(capsys):
    parser = build_parser()
    bad = {
        ("--digit", "10"): "must be a digit 0-9, got 10",
        ("--steps", "0"): "must be a positive integer, got 0",
        ("--rule", "simpson"): "invalid choice: 'simpson'",
        ("--baseline", "white"): "invalid choice: 'white'",
        ("--batch-points", "-1"): "must be a positive integer, got -1",
        ("--num-images", "x"): "'x' is not an integer",
    }
    for arguments, message in bad.items():
        with pytest.raises(SystemExit) as info:
            parser.parse_args(list(arguments))
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    args = parser.parse_args([])
    assert (args.num_images, args.steps, args.rule, args.baseline, args.digit) == (400, 300, "right", "black", None)


def run_script(*arguments):
    return subprocess.run(
        [sys.executable, str(util.ROOT / "src" / "mnist_integrated.py"), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_script_writes_figures_and_reports_completeness(tmp_path):
    result = run_script("--num-images", 20, "--steps", 8, "--skip-checks", "--device", "cpu", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test accuracy 99.43% on 10000 test digits" in result.stdout
    assert "completeness, sum of attributions - (F(x) - F(x')) per image" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ig_attributions.png", "ig_class_means.png"]


def test_script_rejects_trapezoid_with_one_step(tmp_path):
    result = run_script("--num-images", 2, "--steps", 1, "--rule", "trapezoid", "--device", "cpu", "--out", tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more.\n"
    assert not list(tmp_path.iterdir())


def test_script_reports_the_bfloat16_deviation(tmp_path):
    arguments = ("--num-images", 4, "--steps", 8, "--skip-checks", "--device", "cpu", "--out", tmp_path)
    result = run_script(*arguments, "--precision", "bfloat16")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("bfloat16 against float32"))
    assert line.startswith("bfloat16 against float32 on the first 4 digits (plain IG): largest difference ")
    largest = float(line.split("largest difference ")[1].split()[0])
    assert 0 < largest < 0.1


def test_script_explains_a_failing_compile(tmp_path):
    # no C++ compiler, and an empty cache, so that nothing compiled earlier is reused
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "figures"
    result = subprocess.run(
        [sys.executable, str(util.ROOT / "src" / "mnist_integrated.py"), "--compile", "--num-images", "2"]
        + ["--steps", "4", "--skip-checks", "--device", "cpu", "--out", str(out)],
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
