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
    got, expected = torch.as_tensor(got), torch.as_tensor(expected)
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


def check_mean_spectra(root: Path) -> None:
    """mean_spectra(spectra, labels) against the mean of each class and fake - real, on an odd shape."""
    mean_spectra = exercise(root, "deepfake_interpretation").mean_spectra
    spectra = torch.randn(7, 3, 5, 4)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    expected = torch.stack([spectra[labels == 0].double().mean(0), spectra[labels == 1].double().mean(0)])
    means, difference = mean_spectra(spectra, labels)
    close(means, expected, "the mean spectra (2, C, H, W) of 4 real and 3 fake spectra (7, 3, 5, 4)", 1e-5)
    close(difference, expected[1] - expected[0], "the difference fake - real (C, H, W)", 1e-5)


def check_weight_picture(root: Path) -> None:
    """weight_picture(linear, shape) is the layer's weights (2, C*H*W) as two pictures (2, C, H, W)."""
    weight_picture = exercise(root, "deepfake_interpretation").weight_picture
    layer = nn.Linear(3 * 5 * 4, 2)
    picture = weight_picture(layer, torch.Size((3, 5, 4)))
    close(picture, layer.weight.detach().view(2, 3, 5, 4), "the weights of nn.Linear(60, 2) as (2, 3, 5, 4)", 1e-7)


def counted(function, calls: list):
    """``function`` wrapped so that each call appends to ``calls``."""

    def wrapper(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return wrapper


def check_forward_pass(root: Path) -> None:
    """make_forward_pass(net)(x, neuron) is the network's logit y_i, and torch.func.grad and vmap work on it."""
    make_forward_pass = exercise(root, "input_opt").make_forward_pass
    for number, net in enumerate(unseen_networks(), 1):
        forward_pass = make_forward_pass(net)
        images, neurons = torch.rand(4, 1, 28, 28, dtype=torch.float64), torch.tensor([0, 3, 7, 9])
        for x, neuron in zip(images, neurons):
            close(forward_pass(x, neuron), net(x[None])[0, neuron], f"network {number}: y_{neuron.item()}", 1e-9)
        got = torch.func.vmap(torch.func.grad(forward_pass))(images, neurons)
        x = images.clone().requires_grad_()
        (expected,) = torch.autograd.grad(net(x).gather(1, neurons[:, None]).sum(), x)
        close(got, expected, f"network {number}: vmap(grad(forward_pass)) against autograd", 1e-9)


def reference_forward_pass(net: nn.Module):
    """forward_pass(x, neuron): logit ``neuron`` of ``net`` for one image x (1, 28, 28), written for torch.func."""
    params, buffers = dict(net.named_parameters()), dict(net.named_buffers())

    def forward_pass(x: torch.Tensor, neuron: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(net, (params, buffers), (x.unsqueeze(0),))[0]  # (10,)
        return logits.gather(0, neuron.view(1))[0]

    return forward_pass


def check_optimize_input(root: Path) -> None:
    """optimize_input raises the chosen logits from a random and an all-ones start, through torch.func.grad."""
    import models

    module, calls = exercise(root, "input_opt"), []
    module.make_forward_pass = reference_forward_pass  # graded on its own: the student's forward pass is another part
    torch.func.grad = counted(torch.func.grad, calls)
    if hasattr(module, "grad"):
        module.grad = counted(module.grad, calls)
    net = models.load_cnn(root / "data" / "weights.pth")
    starts = {"random": torch.rand(1, 1, 28, 28), "ones": torch.ones(1, 1, 28, 28)}
    ascent = module.optimize_input(net, (3, 8), starts, 20, 0.05)
    assert calls, "the input gradient does not come from torch.func.grad"
    assert tuple(ascent.images.shape) == (2, 2, 1, 28, 28), f"images of shape {tuple(ascent.images.shape)}"
    with torch.no_grad():
        before = net(torch.cat(list(starts.values())))[:, [3, 8]]  # (starts, digits)
        after = net(ascent.images.reshape(-1, 1, 28, 28)).view(2, 2, 10)[..., [3, 8]].diagonal(dim1=1, dim2=2)
    for s, name in enumerate(starts):
        for k, digit in enumerate((3, 8)):
            rise = (after[s, k] - before[s, k]).item()
            assert rise > 1.0, f"from the {name} start, 20 steps raised logit y_{digit} by {rise:.3g}, not more than 1"
    close(ascent.logit[-1], after, "the recorded logits after the last step", 1e-4)


CHECKS = {
    "forward_pass": check_forward_pass,
    "optimize_input": check_optimize_input,
    "integrate_gradients": check_integrate_gradients,
    "transform": check_transform,
    "mean_spectra": check_mean_spectra,
    "weight_picture": check_weight_picture,
}


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
