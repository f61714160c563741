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
from iml.validation import check_images, check_same_shape
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


def runs_forward_of(module, kind):
    """True when `module` is a `kind` whose forward is `kind`'s own and no hook changes what it computes.

    A subclass that overrides forward (or a hook) can compute anything, so the layers that
    `linear_layers` reads from it would not be the function it computes.
    """
    hooks = module._forward_hooks or module._forward_pre_hooks
    return isinstance(module, kind) and type(module).forward is kind.forward and not hooks


def sequential_leaves(module):
    """The layers an nn.Sequential applies, nested ones unpacked; any other module is one leaf."""
    if not runs_forward_of(module, nn.Sequential):
        return [module]
    return [leaf for child in module for leaf in sequential_leaves(child)]


def linear_layers(net):
    """The layers of `net` in the order they are applied: a CNN (with its standardisation) or an nn.Sequential.

    Raises TypeError for a network or layer whose forward is not the one of its class (CNN,
    nn.Sequential, Conv2d, ...), e.g. a subclass that overrides it, or one with forward hooks:
    nothing proves it piecewise linear. Raises ValueError naming the first layer of another kind.
    """
    if runs_forward_of(net, CNN) and all(runs_forward_of(part, nn.Sequential) for part in net.children()):
        layers = [
            Standardize(MNIST_MEAN, MNIST_STD),
            *sequential_leaves(net.features),
            *sequential_leaves(net.classifier),
        ]
    elif runs_forward_of(net, nn.Sequential):
        layers = sequential_leaves(net)
    else:
        raise TypeError(
            f"exact IG needs the project's CNN or an nn.Sequential with their own forward, which it can prove "
            f"piecewise linear; got {type(net).__name__}, which overrides forward or has forward hooks"
        )
    for index, layer in enumerate(layers):
        if isinstance(layer, Standardize) or any(runs_forward_of(layer, kind) for kind in (*AFFINE, nn.ReLU)):
            continue
        if isinstance(layer, (*AFFINE, nn.ReLU, nn.Sequential)):
            raise TypeError(
                f"exact IG cannot prove layer {index} ({type(layer).__name__}) piecewise linear: "
                "it overrides the forward of its class or has forward hooks"
            )
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


def exact_integrated_gradients(net, images, output_digit, baseline=None, progress=None):
    """Integrated Gradients with no approximation, for a piecewise-linear network.

    net: the project's CNN or an nn.Sequential of Conv2d, Linear, ReLU, AvgPool2d and Flatten, in
    eval mode; images (N, 1, 28, 28); output_digit: an int or one per image; baseline as in
    `mnist_integrated.integrate_gradients` (None: black). Computed in the dtype of `images`
    (use float64 for exactness). Returns (attributions (N, 1, 28, 28), pieces (N,) int64: the
    number of linear pieces of each path). Raises ValueError for any other kind of layer and for
    images of another shape, TypeError for a network it cannot prove piecewise linear (see
    `linear_layers`) and for images that are not a floating-point tensor. progress: a bar that
    counts the digits done, or None. An empty batch (0, 1, 28, 28) gives empty attributions and pieces.
    """
    require_eval_mode(net, "exact_integrated_gradients")
    layers = linear_layers(net)
    check_images(images, "exact_integrated_gradients")
    baseline = as_baseline(baseline, images, "exact_integrated_gradients")  # x', (N, 1, 28, 28)
    digits = output_digits(output_digit, len(images), images.device, "exact_integrated_gradients")  # (N,)
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
        if progress is not None:
            progress.update()
    return attributions, pieces


def rule_errors(net, images, digits, exact, steps, rules, progress=None):
    """The true error and the completeness gap of every rule against m, per image.

    exact: `exact_integrated_gradients` of the same images (N, 1, 28, 28), black baseline. Returns
    {rule: (errors (len(steps), N), gaps (len(steps), N))}: error = ||IG_rule - IG_exact|| /
    ||IG_exact|| (L2 over the pixels), gap = |sum IG_rule - (F(x) - F(x'))| / |F(x) - F(x')|.
    progress: a bar that counts the path points done, or None.
    """
    from iml.attribution import target_outputs
    from iml.integrated_fast import integrate_gradients_fast

    check_same_shape(exact, "exact", images, "images", "rule_errors")
    change = target_outputs(net, images, digits) - target_outputs(net, torch.zeros_like(images), digits)  # (N,)
    size = exact.flatten(1).norm(dim=1)  # (N,)
    table = {}
    for rule in rules:
        errors, gaps = [], []
        for m in steps:
            approximate = integrate_gradients_fast(net, images, digits, m, rule=rule, progress=progress)
            errors.append((approximate - exact).flatten(1).norm(dim=1) / size)
            gaps.append((approximate.flatten(1).sum(1) - change).abs() / change.abs())
        table[rule] = (torch.stack(errors), torch.stack(gaps))
    return table
