"""src/iml/integrated_fast.py: the fast path gives the reference's attributions, chunked, compiled or not.

Captum agreement and completeness of the fast path are checked beside the reference's, in
tests/test_mnist_integrated.py (parametrised over both implementations).
"""

import os
import subprocess
import sys

import pytest
import torch

from iml.attribution import blurred
from iml.common import ROOT
from iml.integrated_fast import (
    CPU_BATCH_POINTS,
    GPU_BATCH_POINTS,
    ChannelsLast,
    default_batch_points,
    integrate_gradients_fast,
    pad_to_multiple,
    precision_deviation,
    split_affine_head,
)
from iml.quadrature import RULES
from mnist_integrated import integrate_gradients

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
def test_fast_path_equals_the_reference_in_float64(rule, baseline, chunking, model64, digits):
    steps, batch_points = chunking
    x, labels = digits[0][:5].double(), digits[1][:5]
    targets = labels.clone()
    targets[1] = (labels[1] + 3) % 10  # one digit explained for another output than its own
    base = baseline(x)
    reference = integrate_gradients(model64, x, targets, steps_m=steps, baseline=base, rule=rule)
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


def test_script_explains_a_failing_compile(tmp_path):
    # no C++ compiler, and an empty cache, so that nothing compiled earlier is reused
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "figures"
    result = subprocess.run(
        [sys.executable, str(ROOT / "src" / "mnist_integrated.py"), "--compile", "--num-images", "2"]
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
