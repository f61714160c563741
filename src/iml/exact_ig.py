"""Exact Integrated Gradients for piecewise-linear networks, and the true error of every rule.

A network built from affine layers (Conv2d, Linear, AvgPool2d, Flatten, the input's
standardisation) and ReLUs is piecewise linear along the straight path x' + a (x - x'): inside
each piece no ReLU input changes sign, so the gradient dF/dx is constant there. The IG integral
is then a finite sum, with no approximation:

    IG_i(x) = (x_i - x'_i) * sum_pieces (a_end - a_start) * dF/dx_i(x' + a_mid (x - x'))

The pieces are found layer by layer as in Sotoudeh and Thakur, "Computing Linear Restrictions
of Neural Networks" (NeurIPS 2019, arXiv:1908.06214): the activations are known at every
breakpoint found so far and are linear between them, so a ReLU input that has opposite signs at
two neighbouring breakpoints changes sign once between them, at a point found by interpolation.
All crossings of a layer are found at once; paths with many breakpoints are cut into chunks of
neighbouring segments, each followed through the remaining layers on its own, so memory stays
bounded.
"""

import torch
from torch import nn

from iml.attribution import as_baseline, output_digits, require_eval_mode, saliency
from models import CNN, MNIST_MEAN, MNIST_STD

AFFINE = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.Flatten, nn.Identity)
CHUNK_POINTS = 512  # breakpoints followed through the layers at once: memory ~ CHUNK_POINTS x layer width
GRADIENT_BATCH = 512  # path points whose gradient is computed at once


class Standardize(nn.Module):
    """x -> (x - mean) / std, the first (affine) step of the project's CNN."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) / self.std


def linear_layers(net):
    """The layers of `net` in the order they are applied: a CNN (with its standardisation) or an nn.Sequential.

    Raises ValueError naming the first layer that is neither affine nor a ReLU.
    """
    if isinstance(net, CNN):
        layers = [Standardize(MNIST_MEAN, MNIST_STD), *net.features, *net.classifier]
    elif isinstance(net, nn.Sequential):
        layers = [leaf for module in net for leaf in (module if isinstance(module, nn.Sequential) else [module])]
    else:
        raise ValueError(f"exact IG needs the project's CNN or an nn.Sequential, got {type(net).__name__}")
    for index, layer in enumerate(layers):
        if not isinstance(layer, (*AFFINE, nn.ReLU, Standardize)):
            raise ValueError(
                f"exact IG handles Conv2d, Linear, ReLU, AvgPool2d, Flatten and input standardisation; "
                f"layer {index} is {type(layer).__name__}"
            )
    return layers


def crossings(alphas, points):
    """The alphas (M,) at which some unit of `points` changes sign between neighbouring breakpoints.

    alphas (K,) sorted positions on the path; points (K, ...) a ReLU's inputs there, linear in
    alpha between neighbours, so a unit with opposite signs at the two ends of a segment is zero
    exactly once inside it.
    """
    flat = points.flatten(1)  # (K, D)
    left, right = flat[:-1], flat[1:]  # (K-1, D): the two ends of every segment
    segment, unit = ((left * right) < 0).nonzero(as_tuple=True)
    t = left[segment, unit] / (left[segment, unit] - right[segment, unit])  # (M,) in (0, 1)
    return alphas[segment] + t * (alphas[segment + 1] - alphas[segment])


def interpolate(alphas, points, at):
    """The activations at positions `at` (M,) of the path that is linear between (alphas (K,), points (K, ...))."""
    k = (torch.searchsorted(alphas, at, right=True) - 1).clamp(0, len(alphas) - 2)  # (M,): the segment of each
    t = ((at - alphas[k]) / (alphas[k + 1] - alphas[k])).view(-1, *[1] * (points.dim() - 1))
    return points[k] + t * (points[k + 1] - points[k])


def path_breakpoints(layers, start, end):
    """Every alpha in [0, 1] where a ReLU input on the path start + alpha (end - start) changes sign.

    start, end: one input each (1, ...) in the network's dtype. Returns sorted alphas (K,), with 0 and 1.
    """
    alphas = torch.tensor([0.0, 1.0], dtype=start.dtype, device=start.device)
    return _refine(layers, alphas, torch.cat([start, end]))


@torch.no_grad()
def _refine(layers, alphas, points):
    """Follow breakpoints (alphas (K,), activations `points` (K, ...)) through `layers`; returns the final alphas.

    At a ReLU the breakpoints become the old ones and all crossings (`crossings`); when there are
    more than CHUNK_POINTS, each run of CHUNK_POINTS neighbours (sharing its end points with the
    next run) is interpolated and followed through the remaining layers alone, so no more than
    CHUNK_POINTS activations of a layer exist at once at each depth.
    """
    for index, layer in enumerate(layers):
        if not isinstance(layer, nn.ReLU):
            points = layer(points)
            continue
        merged = torch.cat([alphas, crossings(alphas, points)]).sort().values.unique_consecutive()
        if len(merged) <= CHUNK_POINTS:
            alphas, points = merged, interpolate(alphas, points, merged).clamp_min(0)
            continue
        parts = []
        for first in range(0, len(merged) - 1, CHUNK_POINTS - 1):
            at = merged[first : first + CHUNK_POINTS]
            found = _refine(layers[index + 1 :], at, interpolate(alphas, points, at).clamp_min(0))
            parts.append(found if not parts else found[1:])  # the shared end point once
        return torch.cat(parts)
    return alphas


def exact_integrated_gradients(net, images, output_digit, baseline=None):
    """Integrated Gradients with no approximation, for a piecewise-linear network.

    net: the project's CNN or an nn.Sequential of Conv2d, Linear, ReLU, AvgPool2d and Flatten, in
    eval mode; images (N, 1, 28, 28); output_digit: an int or one per image; baseline as in
    `mnist_integrated.integrate_gradients` (None: black). Computed in the dtype of `images`
    (use float64 for exactness). Returns (attributions (N, 1, 28, 28), pieces (N,) int64: the
    number of linear pieces of each path). Raises ValueError for any other kind of layer.
    """
    require_eval_mode(net)
    layers = linear_layers(net)
    baseline = as_baseline(baseline, images)  # x', (N, 1, 28, 28)
    digits = output_digits(output_digit, len(images), images.device)  # (N,)
    attributions, pieces = torch.empty_like(images), torch.empty(len(images), dtype=torch.int64)
    for n in range(len(images)):
        start, end = baseline[n : n + 1], images[n : n + 1]
        alphas = path_breakpoints(layers, start, end)  # (K,)
        middles, lengths = (alphas[1:] + alphas[:-1]) / 2, alphas[1:] - alphas[:-1]  # (K-1,) each
        total = torch.zeros_like(start)
        for first in range(0, len(middles), GRADIENT_BATCH):
            a, w = middles[first : first + GRADIENT_BATCH], lengths[first : first + GRADIENT_BATCH]
            points = start + a[:, None, None, None] * (end - start)  # (B, 1, 28, 28)
            gradients = saliency(net, points, digits[n].repeat(len(a)))  # (B, 1, 28, 28), constant per piece
            total += (w[:, None, None, None] * gradients).sum(0, keepdim=True)
        attributions[n], pieces[n] = ((end - start) * total)[0], len(middles)
    return attributions, pieces


def rule_errors(net, images, digits, exact, steps, rules):
    """The true error and the completeness gap of every rule against m, per image.

    exact: `exact_integrated_gradients` of the same images (N, 1, 28, 28), black baseline. Returns
    {rule: (errors (len(steps), N), gaps (len(steps), N))}: error = ||IG_rule - IG_exact|| /
    ||IG_exact|| (L2 over the pixels), gap = |sum IG_rule - (F(x) - F(x'))| / |F(x) - F(x')|.
    """
    from iml.attribution import target_outputs
    from iml.integrated_fast import integrate_gradients_fast

    change = target_outputs(net, images, digits) - target_outputs(net, torch.zeros_like(images), digits)  # (N,)
    size = exact.flatten(1).norm(dim=1)  # (N,)
    table = {}
    for rule in rules:
        errors, gaps = [], []
        for m in steps:
            approximate = integrate_gradients_fast(net, images, digits, m, rule=rule)
            errors.append((approximate - exact).flatten(1).norm(dim=1) / size)
            gaps.append((approximate.flatten(1).sum(1) - change).abs() / change.abs())
        table[rule] = (torch.stack(errors), torch.stack(gaps))
    return table
