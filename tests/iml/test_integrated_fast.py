"""src/iml/integrated_fast.py: the fast twin gives the formula's attributions for every rule and baseline,
chunked, compiled or not, and Captum's. With the exercise's black baseline and right sum it is checked beside
the exercise's `integrate_gradients` in tests/test_mnist_integrated.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from conftest import linear_model, smooth_model
from torch import nn

from iml.attribution import CPU_BATCH_POINTS, GPU_BATCH_POINTS, blurred, completeness_gap, default_batch_points
from iml.common import ROOT
from iml.integrated_fast import (
    ChannelsLast,
    integrate_gradients_fast,
    pad_to_multiple,
    precision_deviation,
    split_affine_head,
)
from iml.quadrature import CAPTUM_METHODS, RULES, quadrature


def formula(net, x, targets, steps, baseline=None, rule="right"):
    """IG written out with autograd, one path point at a time: (x - x') * sum_k w_k dF(x' + a_k (x - x'))/dx."""
    baseline = torch.zeros_like(x) if baseline is None else baseline
    alphas, weights = quadrature(rule, steps)
    total = torch.zeros_like(x)
    for alpha, weight in zip(alphas.tolist(), weights.tolist()):
        point = (baseline + alpha * (x - baseline)).requires_grad_()
        (gradient,) = torch.autograd.grad(net(point).gather(1, targets[:, None]).sum(), point)
        total += weight * gradient
    return (x - baseline) * total


def captum_ig(net, x, target, m, method, baseline):
    return IntegratedGradients(net).attribute(x, baselines=baseline, target=target, n_steps=m, method=method)


BASELINES = {
    "black": lambda x: None,
    "blurred": blurred,
    "random": lambda x: torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype),
}
# (steps m, batch points): 8 steps in chunks of 20 points hold 2 whole images, the last of the 3
# chunks of 5 images holds 1; 30 steps in chunks of 7 split every image's steps, the last chunk 2
CHUNKINGS = {"images-split": (8, 20), "steps-split": (30, 7)}


@pytest.mark.parametrize("chunking", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("baseline", BASELINES.values(), ids=BASELINES.keys())
@pytest.mark.parametrize("rule", RULES)
def test_fast_path_equals_the_formula_in_float64(rule, baseline, chunking, model64, digits):
    steps, batch_points = chunking
    x, labels = digits[0][:5].double(), digits[1][:5]
    targets = labels.clone()
    targets[1] = (labels[1] + 3) % 10  # one digit explained for another output than its own
    base = baseline(x)
    reference = formula(model64, x, targets, steps, base, rule)
    fast = integrate_gradients_fast(
        model64, x, targets, steps_m=steps, baseline=base, rule=rule, batch_points=batch_points
    )
    assert fast.dtype == torch.float64 and fast.shape == x.shape
    assert float((fast - reference).abs().max() / reference.abs().max()) < 1e-10


def test_split_affine_head_reproduces_the_network(shipped_model, digits):
    x, _ = digits
    head, body = split_affine_head(shipped_model)
    torch.testing.assert_close(body(head(x)), shipped_model(x))
    # a head that is affine: head(a x + (1 - a) y) = a head(x) + (1 - a) head(y)
    y = torch.rand_like(x)
    torch.testing.assert_close(head(0.3 * x + 0.7 * y), 0.3 * head(x) + 0.7 * head(y), atol=1e-5, rtol=1e-5)


def test_split_affine_head_of_another_network_is_the_identity():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    head, body = split_affine_head(net)
    x = torch.rand(2, 1, 28, 28)
    assert head(x) is x and body is net


def test_channels_last_keeps_the_values_and_changes_the_layout():
    x = torch.randn(3, 32, 26, 26)
    y = ChannelsLast()(x)
    assert torch.equal(y, x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(memory_format=torch.channels_last)
    # and so under vmap, where `contiguous(memory_format=...)` is not supported
    batched = torch.func.vmap(ChannelsLast())(x[None])
    assert torch.equal(batched, x[None])


def test_chunk_size_does_not_change_the_result(model64, digits):
    x, labels = digits[0][:5].double(), digits[1][:5]
    reference = integrate_gradients_fast(model64, x, labels, steps_m=20, batch_points=10_000)
    # 1: one step at a time; 7: chunks of steps; 20, 33: whole images, the last chunk short
    for batch_points in (1, 7, 20, 33):
        result = integrate_gradients_fast(model64, x, labels, steps_m=20, batch_points=batch_points)
        torch.testing.assert_close(result, reference, rtol=1e-10, atol=1e-12)


def test_default_batch_points_are_small_on_a_cpu_and_large_on_a_gpu():
    assert default_batch_points("cpu") == CPU_BATCH_POINTS == 512
    assert default_batch_points(torch.device("cuda", 0)) == GPU_BATCH_POINTS == 16384


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
    eager = integrate_gradients_fast(shipped_model, x, labels, **options)
    compiled = integrate_gradients_fast(shipped_model, x, labels, compile=True, **options)
    assert compiled.shape == eager.shape
    # float32: the fused kernels add up in another order
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4 * float(eager.abs().max()))


def test_bfloat16_lies_close_to_float32_but_not_on_it(shipped_model, digits):
    x, labels = digits[0][:3], digits[1][:3]
    exact = integrate_gradients_fast(shipped_model, x, labels, steps_m=8)
    reduced = integrate_gradients_fast(shipped_model, x, labels, steps_m=8, precision="bfloat16")
    assert reduced.dtype == torch.float32
    largest, median = precision_deviation(reduced, exact)
    assert 0 < largest < 0.1 and 0 < median < 0.1


def test_precision_deviation():
    exact = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    largest, median = precision_deviation(exact * torch.tensor([[1.01], [1.03]]), exact)
    assert largest == pytest.approx(0.03)  # 4 * 0.03 / 4
    assert median == pytest.approx(0.01)  # torch's median of two values is the lower one


def test_the_command_explains_a_failing_compile(tmp_path):
    # no C++ compiler, and an empty cache, so that nothing compiled earlier is reused
    out = tmp_path / "figures"
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "iml", "ig", "--compile", "--num-images", "2", "--steps", "4", "--device", "cpu"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: torch.compile failed (InvalidCxxCompiler: No working C++ compiler")
    assert result.stderr.endswith(
        "it needs a C++ compiler on a CPU and Triton on a GPU: install one, or run without --compile.\n"
    )
    assert not out.exists() or not list(out.iterdir())


# ------------------------------------------------------------------ every rule and baseline (the exercise: right, black)


@pytest.mark.parametrize("rule", RULES)
def test_completeness_is_exact_for_a_linear_model(rule, digits):
    net = linear_model()
    x = digits[0].double()
    baseline = torch.rand_like(x)
    attributions = integrate_gradients_fast(net, x, 3, steps_m=4, baseline=baseline, rule=rule)
    weight = net[1].weight[3].detach().view(1, 1, 28, 28)
    torch.testing.assert_close(attributions, (x - baseline) * weight)
    assert completeness_gap(net, x, attributions, 3, baseline).abs().max() < 1e-12


def test_completeness_tightens_as_m_grows_for_a_smooth_model_by_each_rules_order(digits):
    net = smooth_model()
    x, labels = digits[0].double(), digits[1]
    with torch.no_grad():
        change = net(x).gather(1, labels[:, None]).squeeze(1) - net(torch.zeros_like(x))[0, labels]

    def relative_gap(rule, m):
        attributions = integrate_gradients_fast(net, x, labels, steps_m=m, rule=rule)
        return float((completeness_gap(net, x, attributions, labels).abs() / change.abs()).max())

    trapezoid = [relative_gap("trapezoid", m) for m in (8, 32)]
    assert trapezoid[1] < trapezoid[0] / 8  # second order: 1/m^2
    assert relative_gap("gausslegendre", 16) < 1e-9


@pytest.mark.parametrize("rule", list(CAPTUM_METHODS))
def test_agrees_with_captum(rule, model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    targets = torch.tensor([labels[0].item(), 4, labels[2].item()])  # explained and unexplained digits
    for baseline in (torch.zeros_like(x), blurred(x)):
        ours = integrate_gradients_fast(model64, x, targets, steps_m=16, baseline=baseline, rule=rule)
        theirs = captum_ig(model64, x, targets, 16, CAPTUM_METHODS[rule], baseline)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))


def test_captum_trapezoid_weights_sum_to_less_than_one(model64, digits):
    m = 12
    # the installed Captum: m nodes at linspace(0, 1, m), weights 1/m with halved ends
    step_sizes, alphas = approximation_parameters("riemann_trapezoid")
    np.testing.assert_allclose(alphas(m), np.linspace(0, 1, m), atol=1e-7)
    assert sum(step_sizes(m)) == pytest.approx((m - 1) / m)
    x, labels = digits[0][:4].double(), digits[1][:4]
    ours = integrate_gradients_fast(model64, x, labels, steps_m=m, rule="trapezoid")
    theirs = captum_ig(model64, x, labels, m, "riemann_trapezoid", torch.zeros_like(x))
    torch.testing.assert_close(ours, theirs * m / (m - 1), rtol=1e-6, atol=1e-6 * float(theirs.abs().max()))
    our_gap = completeness_gap(model64, x, ours, labels).abs()
    their_gap = completeness_gap(model64, x, theirs, labels).abs()
    assert our_gap.median() < their_gap.median()


def parameterless_model():
    """A network with no parameters and no buffers (N, 1, 28, 28) -> (N, 784), which Captum accepts."""
    return nn.Sequential(nn.Flatten(), nn.Tanh()).eval()


def test_a_network_without_parameters_runs_on_the_inputs_device_and_agrees_with_captum():
    net, x = parameterless_model(), torch.rand(3, 1, 28, 28, dtype=torch.float64)
    targets = torch.tensor([0, 400, 783])
    ours = integrate_gradients_fast(net, x, targets, steps_m=16, rule="midpoint")
    theirs = captum_ig(net, x, targets, 16, CAPTUM_METHODS["midpoint"], torch.zeros_like(x))
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)
    gap = completeness_gap(net, x, integrate_gradients_fast(net, x, targets, 8, rule="gausslegendre"), targets)
    assert gap.abs().max() < 1e-6
