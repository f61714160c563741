"""src/iml/quadrature.py: the nodes and weights of every integration rule."""

import numpy as np
import pytest
import torch

from iml import cli
from iml.common import InputError
from iml.quadrature import CAPTUM_METHODS, RULES, quadrature


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


def test_trapezoid_rule_with_one_step_is_refused_with_the_steps_flag():
    with pytest.raises(InputError) as info:
        quadrature("trapezoid", 1)
    assert info.value.hint == "trapezoid-steps"
    assert cli.user_message(info.value) == "the trapezoid rule needs at least 2 steps, got 1; use --steps 2 or more."


def test_trapezoid_rule_has_halved_end_weights_and_nodes_at_both_ends():
    alphas, weights = quadrature("trapezoid", 5)
    assert alphas.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert weights.tolist() == [0.125, 0.25, 0.25, 0.25, 0.125]


def test_gauss_legendre_is_exact_up_to_degree_2m_minus_1():
    alphas, weights = quadrature("gausslegendre", 4)
    for degree in range(8):
        assert float(weights @ alphas**degree) == pytest.approx(1 / (degree + 1), abs=1e-14)
    assert abs(float(weights @ alphas**8) - 1 / 9) > 1e-6


@pytest.mark.parametrize("rule", RULES)
def test_one_rule_serves_any_dtype_and_device(rule):
    alphas64, weights64 = quadrature(rule, 6)
    alphas, weights = quadrature(rule, 6, dtype=torch.float32, device="cpu")
    assert alphas.dtype == weights.dtype == torch.float32
    np.testing.assert_allclose(alphas.numpy(), alphas64.numpy(), rtol=1e-7)
    np.testing.assert_allclose(weights.numpy(), weights64.numpy(), rtol=1e-7)


def test_unknown_rule_is_a_value_error_naming_the_rules():
    with pytest.raises(ValueError, match=r"unknown rule 'simpson'; use one of right, left, midpoint, trapezoid"):
        quadrature("simpson", 4)


def test_every_captum_method_names_one_of_our_rules_except_trapezoid():
    assert set(CAPTUM_METHODS) == set(RULES) - {"trapezoid"}
