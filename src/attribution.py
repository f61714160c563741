"""Sanity checks for attribution maps, for any method given as a function `explain(net, images, digits)`.

- `randomisation_test`: the model-parameter randomisation test of Adebayo et al. 2018, "Sanity
  Checks for Saliency Maps". Re-initialise the layers one by one from the logits down and measure
  how much the maps change. A method whose maps survive the randomisation of the weights explains
  the input, not the model.
- `deletion_curve`: remove pixels in the order a method ranks them and watch the probability of
  the explained class fall. The faster it falls, the more faithful the ranking.

`src/mnist_integrated.py` runs both on Integrated Gradients; the functions work on any classifier.
"""

import copy

import torch


def spearman(a, b, mask=None):
    """Spearman rank correlation of `a` and `b` per row, (N, ...) -> (N,), over the pixels in `mask`.

    Ties are broken by position, which is exact for continuous attributions.
    """
    a, b = a.flatten(1), b.flatten(1)
    mask = torch.ones_like(a, dtype=torch.bool) if mask is None else mask.flatten(1)
    rho = torch.empty(len(a), dtype=torch.float64)
    for i in range(len(a)):
        ranks = [v[mask[i]].double().argsort().argsort().double() for v in (a[i], b[i])]
        ranks = [r - r.mean() for r in ranks]
        denominator = ranks[0].norm() * ranks[1].norm()
        rho[i] = (ranks[0] @ ranks[1]) / denominator if denominator > 0 else float("nan")
    return rho


def cascading_randomisations(net, seed=0):
    """Yield (layer name, copy of `net`) with the layers re-initialised from the logits down.

    The first copy has only the last layer re-initialised, the next also the one below, and so
    on until no trained weights are left. `net` itself is never changed.
    """
    layers = [(name, m) for name, m in net.named_modules() if hasattr(m, "reset_parameters") and name]
    randomised = copy.deepcopy(net)
    modules = dict(randomised.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, _ in reversed(layers):
            modules[name].reset_parameters()
            yield name, randomised


def randomisation_test(net, explain, images, digits, mask=None, seed=0):
    """Rank correlation of |attribution| between `net` and its cascading randomisations.

    Returns (stages, correlations, maps): the stage names ("trained", then each re-initialised
    layer), the Spearman correlation per stage and image (stages, N), and the attributions per
    stage (stages, N, ...). `mask` picks the pixels to compare, e.g. those where the input differs
    from the baseline: elsewhere Integrated Gradients is zero for every model, which would make
    even a random model look similar.
    """
    trained = explain(net, images, digits)
    stages, maps = ["trained"], [trained]
    for name, randomised in cascading_randomisations(net, seed):
        stages.append(name)
        maps.append(explain(randomised, images, digits))
    maps = torch.stack(maps)
    correlations = torch.stack([spearman(trained.abs(), m.abs(), mask) for m in maps])
    return stages, correlations, maps


@torch.no_grad()
def deletion_curve(net, images, digits, scores, fractions, fill=0.0):
    """Probability of `digits` as the highest-scoring pixels are replaced by `fill`.

    images, scores: (N, 1, H, W); fractions: (F,) in [0, 1] of the pixels to remove.
    Returns the softmax probabilities (N, F).
    """
    n = len(images)
    pixels = images[0].numel()
    # rank[i, p] = position of pixel p in image i's order, 0 = the highest score
    rank = scores.flatten(1).argsort(dim=1, descending=True).argsort(dim=1)  # (N, P)
    digits = torch.as_tensor(digits, device=images.device).expand(n)
    probabilities = []
    for fraction in fractions.tolist():
        removed = (rank < round(fraction * pixels)).view_as(images)
        logits = net(torch.where(removed, torch.full_like(images, fill), images))
        probabilities.append(logits.softmax(dim=1).gather(1, digits[:, None]).squeeze(1))
    return torch.stack(probabilities, dim=1)


def area_under_curve(fractions, values):
    """Trapezoid area under values (N, F) over fractions (F,), divided by the fraction range.

    For a deletion curve this is the mean probability while the pixels are removed: lower is better.
    """
    fractions = fractions.to(values)
    area = ((values[:, 1:] + values[:, :-1]) / 2 * fractions.diff()).sum(dim=1)
    return area / (fractions[-1] - fractions[0])
