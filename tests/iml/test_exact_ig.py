"""src/iml/exact_ig.py: Integrated Gradients with no approximation for piecewise-linear networks. It must
close the completeness gap to rounding, agree with the midpoint rule at very large m, equal every
rule on a linear network, find the same pieces however the path is chunked, and refuse other layers."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from iml import exact_ig
from iml.attribution import completeness_gap, target_outputs
from iml.exact_ig import exact_integrated_gradients, linear_layers, path_breakpoints, rule_errors
from iml.integrated_fast import integrate_gradients_fast
from iml.quadrature import RULES
from models import CNN


def small_relu_net(seed=0, linear=False):
    """A small fully connected ReLU network (or, with `linear`, the same without ReLUs) in float64, eval mode."""
    torch.manual_seed(seed)
    act = nn.Identity if linear else nn.ReLU
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), act(), nn.Linear(32, 16), act(), nn.Linear(16, 10))
    return net.double().eval()


def random_digits(count=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 1, 28, 28, generator=generator, dtype=torch.float64)


def relative_error(a, b):
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max().item()


def test_the_shipped_cnn_closes_the_completeness_gap_to_rounding(model64, digits):
    x, labels = digits[0][:2].double(), digits[1][:2]
    attributions, pieces = exact_integrated_gradients(model64, x, labels)
    change = target_outputs(model64, x, labels) - target_outputs(model64, torch.zeros_like(x), labels)
    gap = completeness_gap(model64, x, attributions, labels).abs() / change.abs()
    assert gap.max() <= 1e-9, gap
    assert attributions.shape == x.shape and (pieces > 100).all()  # a real digit crosses thousands of kinks


def test_it_equals_the_midpoint_rule_at_very_large_m_to_that_rules_error():
    net, x = small_relu_net(), random_digits()
    exact, pieces = exact_integrated_gradients(net, x, 3)
    far = relative_error(integrate_gradients_fast(net, x, 3, 100_000, rule="midpoint"), exact)
    near = relative_error(integrate_gradients_fast(net, x, 3, 1_000, rule="midpoint"), exact)
    # the gradient is constant on each piece and jumps between pieces, so every step that holds a
    # jump is off by O(1/m): the midpoint rule closes in on the exact value as 1/m, 100x from m = 1,000
    assert far < 1e-5
    assert 50 < near / far < 200, (near, far)
    assert (pieces > 1).all()


@pytest.mark.parametrize(
    ("rule", "steps"), [(rule, m) for rule in RULES for m in (1, 3) if not (rule == "trapezoid" and m < 2)]
)
def test_on_a_linear_network_every_rule_is_exact_at_any_m(rule, steps):
    net, x = small_relu_net(linear=True), random_digits()
    exact, pieces = exact_integrated_gradients(net, x, 7)
    assert pieces.tolist() == [1, 1, 1]
    assert relative_error(integrate_gradients_fast(net, x, 7, steps, rule=rule), exact) < 1e-12


def test_chunking_the_path_finds_the_same_breakpoints(monkeypatch, model64, digits):
    layers, x = linear_layers(model64), digits[0][:1].double()
    whole = path_breakpoints(layers, torch.zeros_like(x), x)
    monkeypatch.setattr(exact_ig, "CHUNK_POINTS", 7)
    chunked = path_breakpoints(layers, torch.zeros_like(x), x)
    assert len(chunked) == len(whole) and torch.allclose(chunked, whole, rtol=0, atol=1e-12)
    assert chunked[0] == 0 and chunked[-1] == 1 and (chunked[1:] > chunked[:-1]).all()


def test_no_relu_input_changes_sign_inside_a_piece():
    net, x = small_relu_net(seed=1), random_digits(1, seed=1)
    layers = linear_layers(net)
    alphas = path_breakpoints(layers, torch.zeros_like(x), x)
    # at 1/4 and at 3/4 of every piece, every ReLU input has the same sign
    quarter = (alphas[:-1] + (alphas[1:] - alphas[:-1]) / 4)[:, None, None, None] * x
    three_quarters = (alphas[:-1] + 3 * (alphas[1:] - alphas[:-1]) / 4)[:, None, None, None] * x
    relus = 0
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.ReLU):
                assert torch.equal(quarter > 0, three_quarters > 0)
                relus += 1
            quarter, three_quarters = layer(quarter), layer(three_quarters)
    assert relus == 2 and len(alphas) > 2


def test_a_baseline_other_than_black_is_integrated_exactly():
    net, x = small_relu_net(seed=2), random_digits(2, seed=2)
    baseline = torch.full_like(x, 0.25)
    exact, _ = exact_integrated_gradients(net, x, 5, baseline=baseline)
    change = target_outputs(net, x, 5) - target_outputs(net, baseline, 5)
    assert (completeness_gap(net, x, exact, 5, baseline=baseline).abs() / change.abs()).max() <= 1e-9


@pytest.mark.parametrize(
    ("layer", "name"), [(nn.Tanh(), "Tanh"), (nn.MaxPool2d(2), "MaxPool2d"), (nn.BatchNorm2d(1), "BatchNorm2d")]
)
def test_a_network_with_another_layer_is_refused_by_name(layer, name):
    net = (
        nn.Sequential(layer, nn.Flatten(), nn.LazyLinear(10))
        if name != "Tanh"
        else nn.Sequential(nn.Flatten(), nn.Linear(784, 10), layer)
    )
    with pytest.raises(
        ValueError,
        match=f"handles Conv2d, Linear, ReLU, AvgPool2d, Flatten and input standardisation; layer \\d is {name}$",
    ):
        exact_integrated_gradients(net.eval(), random_digits(1), 0)


def test_rule_errors_are_zero_for_exact_attributions_on_a_linear_network():
    net, x = small_relu_net(linear=True), random_digits(2)
    exact, _ = exact_integrated_gradients(net, x, 1)
    table = rule_errors(net, x, torch.tensor([1, 1]), exact, (2, 4), ("midpoint", "right"))
    for errors, gaps in table.values():
        assert errors.shape == gaps.shape == (2, 2)
        assert errors.max() < 1e-12 and gaps.max() < 1e-12


def test_the_check_does_not_change_the_model(model64, digits):
    before = copy.deepcopy(model64.state_dict())
    exact_integrated_gradients(model64, digits[0][:1].double(), digits[1][:1])
    assert all(torch.equal(before[k], v) for k, v in model64.state_dict().items())


class Squared(CNN):
    """A CNN whose forward squares the logits: the base CNN's layers no longer describe it."""

    def forward(self, x):
        return super().forward(x) ** 2


class ShiftedSequential(nn.Sequential):
    def forward(self, x):
        return super().forward(x) + x.flatten(1)[:, :10] ** 2


class LeakyReLU(nn.ReLU):
    def forward(self, x):
        return torch.where(x > 0, x, 0.1 * x)


def hooked(net):
    net.register_forward_hook(lambda module, inputs, output: output.exp())
    return net


NOT_PROVABLE = {
    "CNN subclass with its own forward": (lambda: Squared(), "got Squared, which overrides forward"),
    "Sequential subclass": (lambda: ShiftedSequential(nn.Flatten(), nn.Linear(784, 10)), "got ShiftedSequential"),
    "CNN with a hook": (lambda: hooked(CNN()), "got CNN, which overrides forward or has forward hooks"),
    "ReLU subclass": (
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10), LeakyReLU()),
        r"cannot prove layer 2 \(LeakyReLU\) piecewise linear",
    ),
    "hooked layer in the CNN": (lambda: hooked_layer_cnn(), r"cannot prove layer 1 \(Conv2d\)"),
}


def hooked_layer_cnn():
    net = CNN()
    hooked(net.features[0])
    return net


@pytest.mark.parametrize(("make", "message"), NOT_PROVABLE.values(), ids=NOT_PROVABLE.keys())
def test_a_network_it_cannot_prove_piecewise_linear_is_refused(make, message):
    with pytest.raises(TypeError, match=message):
        exact_integrated_gradients(make().double().eval(), random_digits(1), 0)


def test_a_cnn_subclass_that_keeps_the_forward_is_accepted(model64, digits):
    class Renamed(CNN):
        pass

    net = Renamed().double().eval()
    net.load_state_dict(model64.state_dict())
    x = digits[0][:1].double()
    torch.testing.assert_close(exact_integrated_gradients(net, x, 3)[0], exact_integrated_gradients(model64, x, 3)[0])


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (torch.rand(28, 28), ValueError, r"shape \(N, 1, 28, 28\), got \(28, 28\); .* images\.view\(1, 1, 28, 28\)$"),
        (torch.rand(2, 3, 28, 28), ValueError, r"got \(2, 3, 28, 28\)"),
        (
            torch.zeros(1, 1, 28, 28, dtype=torch.uint8),
            TypeError,
            r"floating-point tensor .* got a torch.uint8 tensor of shape \(1, 1, 28, 28\); pixels 0-255 become \[0, 1\]",
        ),
        (np.zeros((1, 1, 28, 28)), TypeError, r"got a numpy float64 array of shape \(1, 1, 28, 28\); torch.from_numpy"),
    ],
)
def test_images_of_another_shape_or_type_are_refused_before_any_work(images, error, message):
    with pytest.raises(error, match=message):
        exact_integrated_gradients(CNN().eval(), images, 0)
