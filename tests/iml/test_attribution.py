"""src/iml/attribution.py: baselines, the eval-mode check, completeness, the plain gradient, rank
correlation, and the two sanity checks (model randomisation and pixel deletion)."""

import copy
import math

import numpy as np
import pytest
import scipy.stats
import torch
from captum.attr import Saliency
from conftest import linear_model, smooth_model
from torch import nn

from iml.attribution import (
    area_under_curve,
    as_baseline,
    cascading_randomizations,
    completeness_gap,
    deletion_curve,
    make_baselines,
    network_device,
    output_digits,
    randomization_test,
    saliency,
    smooth_grad,
    spearman,
    target_outputs,
)
from iml.integrated_fast import integrate_gradients_fast
from mnist_integrated import integrate_gradients

# ------------------------------------------------------------------ baselines and outputs


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


def test_as_baseline_expands_none_numbers_and_broadcastable_tensors():
    images = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    assert torch.equal(as_baseline(None, images), torch.zeros_like(images))
    number = as_baseline(0.25, images)
    assert number.shape == images.shape and number.dtype == torch.float64 and torch.all(number == 0.25)
    one = torch.rand(1, 1, 28, 28)
    assert torch.equal(as_baseline(one, images), one.double().expand_as(images))


def test_output_digits_takes_one_int_or_one_per_image():
    assert output_digits(4, 3, "cpu").tolist() == [4, 4, 4]
    assert output_digits(torch.tensor([1, 2, 3]), 3, "cpu").tolist() == [1, 2, 3]


def test_target_outputs_pick_each_images_output_across_batches():
    net = linear_model()
    images = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    digits = torch.tensor([0, 3, 9, 3, 1])
    with torch.no_grad():
        expected = net(images)[torch.arange(5), digits]
    torch.testing.assert_close(target_outputs(net, images, digits, batch_size=2), expected)


def test_a_network_in_training_mode_is_refused(shipped_model, digits):
    net = copy.deepcopy(shipped_model).train()
    x, labels = digits[0][:2], digits[1][:2]
    for method in (integrate_gradients, integrate_gradients_fast):
        with pytest.raises(ValueError, match=r"^CNN is in training mode; call model\.eval\(\) first$"):
            method(net, x, labels, steps_m=2)
    with pytest.raises(ValueError, match=r"call model\.eval\(\) first"):
        saliency(net, x, labels)


# ------------------------------------------------------------------ completeness


def test_a_number_as_baseline_equals_a_constant_image(model64, digits):
    method = integrate_gradients_fast  # the exercise's integrate_gradients has the black baseline only
    x, labels = digits[0][:2].double(), digits[1][:2]
    number = method(model64, x, labels, steps_m=6, baseline=0.25)
    constant = method(model64, x, labels, steps_m=6, baseline=torch.full_like(x, 0.25))
    torch.testing.assert_close(number, constant, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(number, method(model64, x, labels, steps_m=6))  # not the black baseline
    torch.testing.assert_close(
        completeness_gap(model64, x, number, labels, 0.25),
        completeness_gap(model64, x, constant, labels, torch.full_like(x, 0.25)),
    )


def test_completeness_gap_accepts_every_baseline_shape():
    net = linear_model()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    attributions = torch.rand_like(x)
    total = attributions.flatten(1).sum(1)

    def expected(baseline_images):  # sum of attributions - (F(x) - F(x')), x' per image
        return total - (target_outputs(net, x, 2) - target_outputs(net, baseline_images, 2))

    torch.testing.assert_close(completeness_gap(net, x, attributions, 2), expected(torch.zeros_like(x)))
    torch.testing.assert_close(completeness_gap(net, x, attributions, 2, 0.5), expected(torch.full_like(x, 0.5)))
    per_image = torch.rand_like(x)
    torch.testing.assert_close(completeness_gap(net, x, attributions, 2, per_image), expected(per_image))
    shared = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(completeness_gap(net, x, attributions, 2, shared), expected(shared.expand_as(x)))
    several = torch.rand(4, *x.shape, dtype=torch.float64)
    mean_output = torch.stack([target_outputs(net, b, 2) for b in several]).mean(0)
    torch.testing.assert_close(
        completeness_gap(net, x, attributions, 2, several), total - (target_outputs(net, x, 2) - mean_output)
    )


# ------------------------------------------------------------------ the plain gradient and SmoothGrad


def test_saliency_agrees_with_captum_saliency(model64, digits):
    x, labels = digits[0][:3].double(), digits[1][:3]
    theirs = Saliency(model64).attribute(x.clone().requires_grad_(), target=labels, abs=False)
    torch.testing.assert_close(saliency(model64, x, labels), theirs)


def test_smooth_grad_of_a_linear_model_is_its_gradient(digits):
    net = linear_model()
    x = digits[0][:2].double()
    generator = torch.Generator().manual_seed(0)
    smoothed = smooth_grad(lambda images: saliency(net, images, 5), x, samples=3, generator=generator)
    torch.testing.assert_close(smoothed, net[1].weight[5].detach().view(1, 1, 28, 28).expand_as(x))
    # for a nonlinear model the noise matters
    net = smooth_model()
    smoothed = smooth_grad(lambda images: saliency(net, images, 5), x, samples=3, generator=generator)
    assert not torch.allclose(smoothed, saliency(net, x, 5))


# ------------------------------------------------------------------ rank correlation


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


def test_spearman_gives_ties_their_average_rank():
    a, b = torch.tensor([[2.0, 1, 1, 1, 1]]), torch.tensor([[1.0, 2, 2, 2, 2]])
    # ranks from argsort, which break ties by position, would give 0 here
    assert spearman(a, b).item() == -1.0
    assert scipy.stats.spearmanr(a[0], b[0]).statistic == pytest.approx(-1.0, abs=1e-12)


def test_spearman_equals_scipy_on_data_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(4, 60)).astype(np.float64)  # many ties
    b = rng.integers(0, 3, size=(4, 60)).astype(np.float64)
    b[0] = a[0] + rng.integers(0, 2, size=60)  # one correlated row
    expected = [scipy.stats.spearmanr(a[i], b[i]).statistic for i in range(4)]
    np.testing.assert_allclose(spearman(torch.from_numpy(a), torch.from_numpy(b)).numpy(), expected, rtol=1e-12)
    assert expected[0] > 0.5


def test_spearman_of_a_constant_map_is_nan():
    a = torch.tensor([[3.0, 3, 3, 3], [1.0, 2, 3, 4]])
    b = torch.tensor([[1.0, 2, 3, 4], [1.0, 2, 3, 4]])
    rho = spearman(a, b)
    assert math.isnan(rho[0]) and rho[1] == pytest.approx(1.0)
    # constant over the mask only
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    assert math.isnan(spearman(b, torch.tensor([[1.0, 2, 3, 4], [5.0, 5, 1, 2]]), mask)[1])


def test_spearman_correlates_values_perfectly_with_their_average_ranks():
    """Was `average_ranks == scipy.stats.rankdata - 1`; the ranks are scipy's now, so this checks that spearman
    ranks ties by their average, as rankdata does (one value alone has no rank order: nan)."""
    rng = np.random.default_rng(1)
    for values in (rng.integers(0, 4, size=30), rng.normal(size=30), np.array([2.0, 1, 1, 1, 1])):
        expected = scipy.stats.rankdata(values) - 1
        rho = spearman(torch.from_numpy(values.astype(np.float64))[None], torch.from_numpy(expected)[None])
        assert rho.item() == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(spearman(torch.tensor([[7.0]]), torch.tensor([[0.0]])).item())


# ------------------------------------------------------------------ model-parameter randomisation


def test_cascading_randomization_leaves_the_model_alone(shipped_model):
    before = {k: v.clone() for k, v in shipped_model.state_dict().items()}
    stages = list(cascading_randomizations(shipped_model, seed=0))
    assert [name for name, _ in stages] == ["classifier.3", "classifier.1", "features.6", "features.3", "features.0"]
    for k, v in shipped_model.state_dict().items():
        assert torch.equal(v, before[k])
    last = stages[-1][1].state_dict()
    assert all(not torch.equal(last[k], before[k]) for k in before)


def test_randomization_test_tells_the_trained_model_from_random_ones(shipped_model, digits):
    x, labels = digits

    def explain(net, images, targets):
        return integrate_gradients_fast(net, images, targets, steps_m=16)

    stages, correlations, maps = randomization_test(shipped_model, explain, x, labels, mask=x != 0)
    assert stages[0] == "trained" and len(stages) == 6
    assert correlations.shape == (6, len(x)) and maps.shape == (6, *x.shape)
    torch.testing.assert_close(correlations[0], torch.ones(len(x), dtype=torch.float64))
    mean = correlations.mean(1)
    assert mean[-1] < 0.7, mean  # all weights random: a different ranking
    assert mean[1:].max() < 0.85, mean  # already the random logit layer changes the map


# ------------------------------------------------------------------ pixel deletion


def test_deletion_curve_ranks_ig_above_random(shipped_model, digits):
    x, labels = digits
    fractions = torch.linspace(0, 0.2, 11)
    probabilities = {
        name: deletion_curve(shipped_model, x, labels, scores, fractions)
        for name, scores in (
            ("ig", integrate_gradients_fast(shipped_model, x, labels, steps_m=32)),
            ("random", torch.rand(x.shape, generator=torch.Generator().manual_seed(0))),
        )
    }
    start = shipped_model(x).softmax(1).gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(probabilities["ig"][:, 0], start)
    auc = {name: area_under_curve(fractions, p).mean() for name, p in probabilities.items()}
    assert auc["ig"] < 0.5 < auc["random"], auc
    assert math.isclose(area_under_curve(fractions, torch.ones(1, 11)).item(), 1.0)


def test_deletion_curve_removes_the_highest_scores_first():
    class FirstPixel(nn.Module):  # logits (p, 0): the first pixel decides
        def forward(self, x):
            p = x.flatten(1)[:, :1] * 10
            return torch.cat([p, torch.zeros_like(p)], dim=1)

    images = torch.ones(1, 1, 2, 2)
    scores = torch.tensor([[[[4.0, 1], [2, 3]]]])  # the first pixel ranks first
    probabilities = deletion_curve(FirstPixel(), images, 0, scores, torch.tensor([0.0, 0.25, 1.0]))
    expected = torch.tensor([[torch.sigmoid(torch.tensor(10.0)), 0.5, 0.5]])
    torch.testing.assert_close(probabilities, expected)
    assert area_under_curve(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([[1.0, 0.0, 0.0]])).item() == 0.25


def test_saliency_and_target_outputs_of_a_network_without_parameters_use_the_inputs_device():
    net = nn.Sequential(nn.Flatten(), nn.Tanh()).eval()  # no parameters or buffers; Captum accepts it
    images = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    digits = torch.tensor([5, 700])
    assert network_device(net, images, "a test") == images.device
    torch.testing.assert_close(target_outputs(net, images, digits), images.flatten(1).tanh()[[0, 1], [5, 700]])
    expected = Saliency(net).attribute(images, target=digits, abs=False)
    torch.testing.assert_close(saliency(net, images, digits), expected)
