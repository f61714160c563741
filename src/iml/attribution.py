"""What every attribution method shares (baselines, output indices, the eval-mode check), and
sanity checks for the maps of any method given as a function `explain(net, images, digits)`:

- `randomisation_test`: the model-parameter randomisation test of Adebayo et al. 2018, "Sanity
  Checks for Saliency Maps" (arXiv:1810.03292). Re-initialise the layers one by one from the
  logits down and measure how much the maps change. A method whose maps survive the
  randomisation of the weights explains the input, not the model.
- `deletion_curve`: remove pixels in the order a method ranks them and watch the probability of
  the explained class fall. The faster it falls, the more faithful the ranking.

`python -m iml ig-checks` runs both on Integrated Gradients; the functions work on any classifier.
"""

import copy
import math
import warnings

import numpy as np
import scipy.stats
import torch
from torch.func import grad, vmap
from torchvision.transforms.functional import gaussian_blur

from iml.progress import progress as progress_bar
from iml.validation import (
    check_baseline,
    check_count,
    check_digits,
    check_fractions,
    check_ig,
    check_images,
    check_network,
    check_number,
    check_same_shape,
    check_tensor,
)

BASELINES = ("black", "blur", "noise")
BLUR_SIGMA = 3.0
# Path points per chunk of IG. On a CPU a chunk whose activations stay in the caches is fastest
# (512 points ran about 1.6x faster than 3,000 on two cores); a GPU wants large batches.
CPU_BATCH_POINTS = 512
GPU_BATCH_POINTS = 16384


def as_baseline(baseline, images, function="as_baseline"):
    """The baseline x' as a tensor shaped like `images` (N, ...): None is black (zeros); a number
    or any tensor that broadcasts to `images` is expanded, as Captum accepts them. A string, a bool
    or a tensor of another shape is refused in the name of `function`, the caller."""
    check_baseline(baseline, images, function)
    if baseline is None:
        return torch.zeros_like(images)
    return torch.as_tensor(baseline).to(images).expand_as(images)


def blurred(images, sigma=BLUR_SIGMA):
    """A Gaussian blur (sigma in pixels) of `images` (N, 1, 28, 28): a baseline that keeps the rough shape."""
    check_images(images, "blurred")
    check_number(sigma, "sigma", "blurred", above=0)
    return gaussian_blur(images, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)


def make_baselines(kind, images, draws=8, generator=None):
    """The baselines of `kind` (one of BASELINES) for `images` (N, 1, 28, 28).

    "black": zeros (N, ...); "blur": `blurred(images)` (N, ...); "noise": `draws` uniform-noise
    images in [0, 1) per input, (D, N, 1, 28, 28).
    """
    check_images(images, "make_baselines")
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blur":
        return blurred(images)
    if kind == "noise":
        check_count(draws, "draws", "make_baselines")
        return torch.rand((draws, *images.shape), generator=generator).to(images)
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


def smooth_grad(attribute, images, samples, sigma=0.15, generator=None):
    """SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825): mean of `attribute(noisy images)` over `samples`.

    attribute: images -> attributions. sigma: the standard deviation of the Gaussian noise in
    pixel units ([0, 1]). It smooths the map; completeness then holds only on average.
    """
    check_tensor(images, "images", "smooth_grad")
    check_count(samples, "samples", "smooth_grad")
    check_number(sigma, "sigma", "smooth_grad", low=0)
    total = 0
    for _ in range(samples):
        noise = torch.randn(images.shape, generator=generator).to(images)
        total = total + attribute(images + sigma * noise)
    return total / samples


def default_batch_points(device):
    """The chunk size, in path points, that `integrate_gradients_fast` uses when it is not given one."""
    return CPU_BATCH_POINTS if torch.device(device).type == "cpu" else GPU_BATCH_POINTS


def attribute_in_chunks(ig, net, images, output_digit, steps_m):
    """`ig(net, images, output_digit, steps_m)` on chunks of digits, behind a progress bar counting them.

    A chunk holds as many digits as the fast twin evaluates at once (`default_batch_points` // m,
    at least one), so for it as for the exercise's function each digit's numbers stay the same
    as in one call. Returns the attributions (N, 1, 28, 28).
    """
    check_ig(net, images, output_digit, steps_m, "attribute_in_chunks")
    size = max(1, default_batch_points(network_device(net, images, "attribute_in_chunks")) // steps_m)
    digits = output_digits(output_digit, len(images), images.device)
    parts = []
    with progress_bar(total=len(images), unit="digits", desc=f"Integrated Gradients, m = {steps_m}") as bar:
        for x, d in zip(images.split(size), digits.split(size)):
            parts.append(ig(net, x, d, steps_m))
            bar.update(len(x))
    return torch.cat(parts)


def output_digits(output_digit, count, device, function="output_digits"):
    """One output index per image, (count,) int64: `output_digit` is one int or one per image, an output
    index from 0 up; a float, a bool or a tensor of another length is refused in the name of `function`."""
    check_digits(output_digit, count, function)
    return torch.as_tensor(output_digit, device=device).expand(count)


def network_device(net, images, function):
    """The device of `net`'s first parameter or buffer; for a network with neither (Captum accepts
    one), the device of `images`, the input it is about to get. TypeError unless `net` is an nn.Module."""
    tensor = next(check_network(net, function).parameters(), None)
    if tensor is None:
        tensor = next(net.buffers(), images)
    return tensor.device


def require_eval_mode(net, function):
    """Raise ValueError if `net` is in training mode, where dropout or batch statistics would change
    F itself (and vmap refuses the in-place updates of batch norm); TypeError unless it is an nn.Module."""
    if check_network(net, function).training:
        raise ValueError(f"{type(net).__name__} is in training mode; call model.eval() first")


def target_outputs(net, images, output_digit, batch_size=1000):
    """F(images): the output `output_digit` (an int or one per image) of `net`, shape (N,); (0,) for no images."""
    check_images(images, "target_outputs")
    check_count(batch_size, "batch_size", "target_outputs")
    device = network_device(net, images, "target_outputs")
    digits = output_digits(output_digit, len(images), device, "target_outputs")
    if not len(images):
        return images.new_zeros(0)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = net(images[start : start + batch_size].to(device))
            outputs.append(logits.gather(1, digits[start : start + batch_size, None]).squeeze(1))
    return torch.cat(outputs).to(images.device)


def completeness_gap(net, images, attributions, output_digit, baseline=None):
    """sum_i attr_i - (F(x) - F(x')) per image, (N,); zero for exact integration.

    Captum calls this the convergence delta. baseline: anything `integrate_gradients` accepts
    (None for black, a number, a tensor that broadcasts to `images`), or several baselines per
    image (D, N, 1, 28, 28), whose mean output is subtracted (the attributions are then the
    mean over the D baselines).
    """
    check_network(net, "completeness_gap")
    check_images(images, "completeness_gap")
    check_same_shape(attributions, "attributions", images, "images", "completeness_gap")
    if torch.is_tensor(baseline) and baseline.dim() == images.dim() + 1:
        check_same_shape(baseline[0], "each of several baselines", images, "images", "completeness_gap")
        baselines = baseline
    else:
        baselines = as_baseline(baseline, images, "completeness_gap")[None]  # (1, N, 1, 28, 28)
    f_base = torch.stack([target_outputs(net, b, output_digit) for b in baselines]).mean(0)
    return attributions.flatten(1).sum(1) - (target_outputs(net, images, output_digit) - f_base)


def saliency(net, images, output_digit):
    """The plain gradient dF/dx (N, 1, 28, 28) that IG is compared with (Simonyan et al. 2013,
    arXiv:1312.6034); Captum's `Saliency` with abs=False."""
    require_eval_mode(net, "saliency")
    check_images(images, "saliency")
    device = network_device(net, images, "saliency")
    digits = output_digits(output_digit, len(images), device, "saliency")
    if not len(images):
        return torch.zeros_like(images)

    def output(x, target):
        return net(x[None])[0].gather(0, target[None])[0]

    with torch.no_grad():
        return vmap(grad(output))(images.to(device), digits).to(images.device)


def spearman(a, b, mask=None):
    """Spearman rank correlation of `a` and `b` per row, (N, ...) -> (N,) float64, over the pixels in `mask`.

    scipy.stats.spearmanr per row: ties get average ranks; a row that is constant over the mask has
    no rank order, and its correlation is nan (scipy's ConstantInputWarning is not shown).
    """
    check_tensor(a, "a", "spearman", kind="real")
    check_same_shape(b, "b", a, "a", "spearman")
    if mask is not None:
        check_same_shape(mask, "mask", a, "a", "spearman")
    a, b = a.flatten(1).double().cpu().numpy(), b.flatten(1).double().cpu().numpy()
    mask = np.ones(a.shape, dtype=bool) if mask is None else mask.flatten(1).cpu().numpy()
    rho = torch.empty(len(a), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        for i in range(len(a)):
            rho[i] = float(scipy.stats.spearmanr(a[i][mask[i]], b[i][mask[i]]).statistic)
    return rho


def cascading_randomizations(net, seed=0):
    """Yield (layer name, copy of `net`) with the layers re-initialised from the logits down.

    The first copy has only the last layer re-initialised, the next also the one below, and so
    on until no trained weights are left. `net` itself is never changed.
    """
    layers = [(name, m) for name, m in net.named_modules() if hasattr(m, "reset_parameters") and name]
    randomized = copy.deepcopy(net)
    modules = dict(randomized.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, _ in reversed(layers):
            modules[name].reset_parameters()
            yield name, randomized


def randomization_test(net, explain, images, digits, mask=None, seed=0):
    """Rank correlation of |attribution| between `net` and its cascading randomisations.

    Returns (stages, correlations, maps): the stage names ("trained", then each re-initialised
    layer), the Spearman correlation per stage and image (stages, N), and the attributions per
    stage (stages, N, ...). `mask` picks the pixels to compare, e.g. those where the input differs
    from the baseline: elsewhere Integrated Gradients is zero for every model, which would make
    even a random model look similar.
    """
    trained = explain(net, images, digits)
    stages, maps = ["trained"], [trained]
    for name, randomized in cascading_randomizations(net, seed):
        stages.append(name)
        maps.append(explain(randomized, images, digits))
    maps = torch.stack(maps)
    correlations = torch.stack([spearman(trained.abs(), m.abs(), mask) for m in maps])
    return stages, correlations, maps


@torch.no_grad()
def deletion_curve(net, images, digits, scores, fractions, fill=0.0, progress=None):
    """Probability of `digits` as the highest-scoring pixels are replaced by `fill` (the pixel-deletion
    curve of Samek et al. 2017, "Evaluating the visualization of what a deep neural network has
    learned", arXiv:1509.06321).

    images, scores: (N, 1, H, W); fractions: (F,) in [0, 1] of the pixels to remove; progress: a bar
    that counts the images evaluated, N per fraction, or None. Returns the softmax probabilities (N, F).
    """
    check_tensor(images, "images", "deletion_curve")
    check_same_shape(scores, "scores", images, "images", "deletion_curve")
    check_fractions(fractions, "deletion_curve")
    check_digits(digits, len(images), "deletion_curve", "digits")
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
        if progress is not None:
            progress.update(n)
    return torch.stack(probabilities, dim=1)


def area_under_curve(fractions, values):
    """Trapezoid area under values (N, F) over fractions (F,), divided by the fraction range.

    For a deletion curve this is the mean probability while the pixels are removed: lower is better.
    """
    check_fractions(fractions, "area_under_curve", at_least=2)
    check_tensor(values, "values", "area_under_curve", ("N", len(fractions)))
    fractions = fractions.to(values)
    area = ((values[:, 1:] + values[:, :-1]) / 2 * fractions.diff()).sum(dim=1)
    return area / (fractions[-1] - fractions[0])
