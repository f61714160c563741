"""Integration rules for Integrated Gradients: nodes and weights on [0, 1].

Integrated Gradients (Sundararajan et al. 2017, arXiv:1703.01365) integrates the gradient along
the straight path from the baseline to the input; every rule here replaces that integral by a
weighted sum over m points of the path, as Captum's `approximation_methods` does.
"""

import numpy as np
import torch

from iml.common import InputError
from iml.validation import check_count, describe

RULES = ("right", "left", "midpoint", "trapezoid", "gausslegendre")
# Captum's names for the same rules; its "riemann_trapezoid" differs from ours (see docs/testing.md).
CAPTUM_METHODS = {
    "right": "riemann_right",
    "left": "riemann_left",
    "midpoint": "riemann_middle",
    "gausslegendre": "gausslegendre",
}


def quadrature(rule, steps_m, dtype=torch.float64, device="cpu"):
    """Nodes alpha_k in [0, 1] and weights w_k, (m,) each: sum_k w_k g(alpha_k) ~ integral_0^1 g.

    "right" is the exercise's sum (1/m) sum_{k=1..m} g(k/m); "left" uses (k-1)/m, "midpoint"
    (k-1/2)/m. "trapezoid" puts its nodes at 0, 1/(m-1), ..., 1 with weights 1/(m-1), halved at
    both ends, so its weights sum to 1 (Captum's "riemann_trapezoid" weights them 1/m instead).
    "gausslegendre" uses the m-point Gauss-Legendre rule mapped to [0, 1].
    Raises ValueError for an unknown rule or m < 1, TypeError for a rule that is no string or an m that is
    no int (a float or a bool), InputError for the trapezoid rule with m < 2.
    """
    m = check_count(steps_m, "steps_m", "quadrature")
    if not isinstance(rule, str):
        raise TypeError(f"quadrature needs rule as one of {', '.join(RULES)}, got {describe(rule)}")
    k = torch.arange(1, m + 1, dtype=torch.float64)
    weights = torch.full((m,), 1 / m, dtype=torch.float64)
    if rule == "right":
        alphas = k / m
    elif rule == "left":
        alphas = (k - 1) / m
    elif rule == "midpoint":
        alphas = (k - 0.5) / m
    elif rule == "trapezoid":
        if m < 2:
            raise InputError(f"the trapezoid rule needs at least 2 steps, got {m}", hint="trapezoid-steps")
        alphas = (k - 1) / (m - 1)
        weights = torch.full((m,), 1 / (m - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
    elif rule == "gausslegendre":
        nodes, gauss_weights = np.polynomial.legendre.leggauss(m)  # on [-1, 1]
        alphas, weights = torch.from_numpy((nodes + 1) / 2), torch.from_numpy(gauss_weights / 2)
    else:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    return alphas.to(device, dtype), weights.to(device, dtype)
