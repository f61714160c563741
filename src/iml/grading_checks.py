"""The checks behind ``python -m iml grade``: each tests one part a student writes against an
independent reference, never against this repository's own solution.

- Integrated Gradients against Captum (``method="riemann_right"``) on small networks the student
  never saw and on the shipped CNN, a quadratic whose right sum is known in closed form (it tells
  the right sum from the left one, gradient times input and a missing (x - x') factor), and
  completeness on the CNN.
- ``transform`` against numpy's formula ``ln(|fft2(I, axes=(-3, -2))| + eps)`` on odd shapes and
  dtypes (``np.fft.fft2`` over its default axes transforms width and colour and fails).
- The mean spectra and their difference against a direct computation; the weight picture's shape
  and values against the layer's weights.
- Input optimization: the neuron's forward pass against the network's own logits, and the ascent
  raises the chosen logit from the random and the all-ones start through ``torch.func.grad``.

``run(name, root)`` is called in a fresh process by iml.grade with the student's src/ first on
sys.path; it returns ``{"passed": bool, "message": "the first failing check, one line"}``.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn


def exercise(root: Path, name: str) -> ModuleType:
    """The student's exercise file ``root/src/<name>.py``, loaded from that path (not from this package)."""
    spec = importlib.util.spec_from_file_location(name, root / "src" / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"src/{name}.py is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def close(got, expected, what: str, rtol: float = 1e-3) -> None:
    """Assert that tensors or arrays ``got`` and ``expected`` agree to ``rtol`` of the largest value."""
    got, expected = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got), torch.as_tensor(expected)
    assert tuple(got.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    )
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    assert torch.isfinite(got).all(), f"{what}: holds NaN or Inf"
    error = (got - expected).abs().max().item()
    scale = expected.abs().max().item() + 1e-12
    assert error <= rtol * scale, f"{what}: off by {error:.3g} (largest reference value {scale:.3g})"


def unseen_networks() -> list[nn.Module]:
    """Small smooth networks on (N, 1, 28, 28) images with 10 outputs, in float64 and eval mode."""
    torch.manual_seed(1)
    networks = [
        nn.Sequential(nn.Conv2d(1, 3, 5), nn.Tanh(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(108, 10)),
        nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Softplus(), nn.Linear(16, 10)),
    ]
    return [net.double().eval() for net in networks]


class Quadratic(nn.Module):
    """F_d(x) = sum_i w_id x_i^2: its right Riemann IG from a black baseline is w x^2 (m + 1)/m exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(784, 10, dtype=torch.float64) - 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).square() @ self.weight


def check_integrate_gradients(root: Path) -> None:
    """integrate_gradients(net, images, digit, m) against Captum, a closed form and completeness."""
    from captum.attr import IntegratedGradients
    integrate_gradients = exercise(root, "mnist_integrated").integrate_gradients

    images = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    quadratic = Quadratic().eval()
    for m in (4, 9):
        expected = (quadratic.weight[:, 2] * images.flatten(1).square() * (m + 1) / m).view_as(images)
        close(integrate_gradients(quadratic, images, 2, m), expected, f"F = sum w x^2, m = {m} (right sum k/m)", 1e-6)
    for number, net in enumerate(unseen_networks(), 1):
        for digit, m in ((3, 5), (8, 12)):
            expected = IntegratedGradients(net).attribute(
                images, baselines=torch.zeros_like(images), target=digit, n_steps=m, method="riemann_right"
            )
            close(
                integrate_gradients(net, images, digit, m),
                expected,
                f"network {number}, digit {digit}, m = {m} vs Captum",
                1e-6,
            )
    import models

    cnn = models.load_cnn(root / "data" / "weights.pth")
    x = torch.rand(2, 1, 28, 28)
    expected = IntegratedGradients(cnn).attribute(
        x, baselines=torch.zeros_like(x), target=5, n_steps=16, method="riemann_right"
    )
    close(integrate_gradients(cnn, x, 5, 16), expected, "the shipped CNN, digit 5, m = 16 vs Captum", 1e-3)
    attributions = integrate_gradients(cnn, x, 5, 300)
    with torch.no_grad():
        change = cnn(x)[:, 5] - cnn(torch.zeros_like(x))[:, 5]
    gap = (attributions.flatten(1).sum(1) - change).abs().max().item()
    assert gap <= 0.02 * change.abs().max().item(), (
        f"completeness: sum of attributions misses F(x) - F(x') by {gap:.3g}"
    )


def check_transform(root: Path) -> None:
    """transform(images) against numpy's ln(|fft2(I, axes=(-3, -2))| + eps) on odd shapes and dtypes."""
    transform = exercise(root, "deepfake_interpretation").transform

    rng = np.random.default_rng(0)
    for shape, dtype in (((17, 13, 3), np.uint8), ((2, 9, 11, 3), np.float32), ((3, 16, 16, 3), np.float64)):
        image = rng.integers(0, 256, shape).astype(dtype)
        expected = np.log(np.abs(np.fft.fft2(image.astype(np.float64), axes=(-3, -2))) + 1e-8)
        close(transform(image), expected, f"transform of a {np.dtype(dtype).name} array {shape}", 1e-4)


CHECKS = {"integrate_gradients": check_integrate_gradients, "transform": check_transform}


def run(name: str, root: str) -> dict:
    """Run check ``name`` on the exercise folder ``root``; {"passed", "message"} with one line on failure."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    try:
        CHECKS[name](Path(root))
    except NotImplementedError as error:
        return {"passed": False, "message": f"not written yet ({str(error).splitlines()[0] if str(error) else 'TODO'})"}
    except AssertionError as error:
        return {"passed": False, "message": str(error).splitlines()[0] if str(error) else "a check failed"}
    except Exception as error:  # a student's crash is that group's result, reported in one line
        text = str(error).splitlines()[0] if str(error) else ""
        return {"passed": False, "message": f"raised {type(error).__name__}: {text}"}
    return {"passed": True, "message": "passed"}
