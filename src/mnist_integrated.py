"""Task 2: train the MNIST digit CNN, then explain its decisions with Integrated Gradients.

    python src/mnist_integrated.py                      # load data/weights.pth (train if missing), explain
    python src/mnist_integrated.py --retrain            # train anew, replace data/weights.pth, explain
    python src/mnist_integrated.py --retrain --val-size 0 --epochs 4 --train-only   # the shipped weights
    python src/mnist_integrated.py --digit 3 --rule gausslegendre --steps 32 --baseline blur
    python src/mnist_integrated.py --baseline noise --smoothgrad 16 --num-images 100 --skip-checks
    python src/mnist_integrated.py --compile --num-images 2000    # torch.compile: faster for large runs
    sbatch scripts/integrated_gradients.slurm           # the same on a SLURM GPU node

Training holds out `--val-size` training digits for validation (reported every epoch); the test
accuracy on the 10,000 test digits is measured once at the end and stored in the checkpoint.

Integrated Gradients (Sundararajan et al. 2017) attributes the output F of one digit neuron to
the pixels x_i of an input x, relative to a baseline x' (a black image by default):

    IntegratedGrads_i(x) = (x_i - x'_i) * (1/m) * sum_{k=1..m} dF(x' + k/m * (x - x'))/dx_i

The attributions add up to F(x) - F(x') (completeness) as m grows; the script reports how close
they come, compares integration rules and baselines, and checks the maps with two sanity tests
(model-parameter randomisation and pixel deletion, see src/attribution.py). Figures go to figures/.
"""

import argparse
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap
from torchvision.transforms.functional import gaussian_blur
from tqdm import tqdm

from attribution import area_under_curve, deletion_curve, randomisation_test
from models import CNN, MNIST_MEAN, MNIST_STD, functional_state, load_cnn, save_checkpoint
from util import (
    WEIGHTS_PATH,
    UserError,
    add_common_arguments,
    check_output_folder,
    digit,
    get_device,
    get_mnist_test_data,
    get_mnist_train_data,
    learning_rate,
    non_negative_int,
    positive_float,
    positive_int,
    relative,
    run_main,
    save_figure,
    set_seed,
)


def to_float_images(images_uint8, device):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] on `device`."""
    return images_uint8.to(device).unsqueeze(1).float().div_(255)


def batches(images, labels, batch_size, shuffle=False, generator=None):
    """Yield (images, labels) mini-batches from tensors already on the device.

    Slicing tensors in place is much faster than a DataLoader over single items, and on a GPU
    it keeps the whole epoch on the card.
    """
    n = len(images)
    order = torch.randperm(n, generator=generator).to(images.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield images[index], labels[index]


def train(args, model, images, labels, optimizer, scheduler, epoch, generator):
    """One epoch of cross-entropy training; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    steps = math.ceil(len(images) / args.batch_size)
    progress = tqdm(
        batches(images, labels, args.batch_size, shuffle=True, generator=generator),
        total=steps,
        desc=f"epoch {epoch}/{args.epochs}",
        leave=False,
        file=sys.stderr,
    )
    for batch, (x, y) in enumerate(progress):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            raise UserError(
                f"training diverged: the loss became {loss.item()} in epoch {epoch}, batch {batch}; "
                f"lower --lr (now {args.lr}); no weights were written."
            )
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        if batch % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
    return total / count


@torch.no_grad()
def test(model, images, labels, batch_size=1000):
    """Accuracy of `model` on float images (N, 1, 28, 28) and int64 labels."""
    model.eval()
    correct = 0
    for x, y in batches(images, labels, batch_size):
        correct += (model(x).argmax(dim=1) == y).sum().item()
    return correct / len(images)


def train_model(args, device):
    """Train a fresh CNN as configured by `args`; returns (model, test accuracy, seconds)."""
    set_seed(args.seed)
    train_images, train_labels = get_mnist_train_data()
    test_images, test_labels = get_mnist_test_data()
    if args.val_size >= len(train_images):
        raise UserError(f"--val-size {args.val_size} leaves no training digits; use fewer than {len(train_images)}.")
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_images), generator=generator)
    train_index, val_index = order[args.val_size :], order[: args.val_size]
    if args.train_size:
        train_index = train_index[: args.train_size]
    x_train = to_float_images(train_images[train_index], device)
    y_train = train_labels[train_index].to(device)
    x_val = to_float_images(train_images[val_index], device)
    y_val = train_labels[val_index].to(device)
    x_test, y_test = to_float_images(test_images, device), test_labels.to(device)

    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # One-cycle: warm up, then anneal to ~0, which reaches 99% on MNIST in a few epochs.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=math.ceil(len(x_train) / args.batch_size)
    )
    print(
        f"training on {len(x_train)} digits, validating on {len(x_val)}, device {device}, "
        f"{args.epochs} epochs, batch size {args.batch_size}, lr {args.lr}"
    )
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = train(args, model, x_train, y_train, optimizer, scheduler, epoch, generator)
        message = f"epoch {epoch}: training loss {loss:.4f}"
        if len(x_val):
            message += f", validation accuracy {test(model, x_val, y_val):.2%}"
        print(message, flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    accuracy = test(model, x_test, y_test)
    print(f"test accuracy {accuracy:.2%} on {len(x_test)} test digits after {seconds:.1f} s of training")
    return model, accuracy, seconds


def training_config(args):
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "val_size": args.val_size,
        "train_size": args.train_size,
    }


def get_model(args, device):
    """Load the weights, or train and save them when asked (`--retrain`) or when they are missing."""
    if args.retrain or not args.weights.exists():
        if not args.retrain:
            print(f"{relative(args.weights)} not found: training a new network.")
        model, accuracy, _ = train_model(args, device)
        save_checkpoint(args.weights, model, training_config(args), accuracy)
        print(f"saved {relative(args.weights)}")
        return model
    return load_cnn(args.weights, device)


# Integrated Gradients ---------------------------------------------------------------------------

RULES = ("right", "left", "midpoint", "trapezoid", "gausslegendre")
BASELINES = ("black", "blur", "noise")
# Captum's names for the same rules; its "riemann_trapezoid" differs from ours (see the README).
CAPTUM_METHODS = {
    "right": "riemann_right",
    "left": "riemann_left",
    "midpoint": "riemann_middle",
    "gausslegendre": "gausslegendre",
}
# Path points per chunk. On a CPU a chunk whose activations stay in the caches is fastest
# (512 points ran about 1.6x faster than 3,000 on two cores); a GPU wants large batches.
CPU_BATCH_POINTS = 512
GPU_BATCH_POINTS = 16384


def default_batch_points(device):
    """The chunk size `integrate_gradients` uses when it is not given one."""
    return CPU_BATCH_POINTS if torch.device(device).type == "cpu" else GPU_BATCH_POINTS


BLUR_SIGMA = 3.0


def quadrature(rule, steps_m, dtype=torch.float64, device="cpu"):
    """Nodes alpha_k in [0, 1] and weights w_k, (m,) each: sum_k w_k g(alpha_k) ~ integral_0^1 g.

    "right" is the exercise's sum (1/m) sum_{k=1..m} g(k/m). "trapezoid" puts its nodes at
    0, 1/(m-1), ..., 1 with weights 1/(m-1), halved at both ends, so its weights sum to 1.
    """
    m = steps_m
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
            raise UserError(f"the trapezoid rule needs at least 2 steps, got {m}; use --steps 2 or more.")
        alphas = (k - 1) / (m - 1)
        weights = torch.full((m,), 1 / (m - 1), dtype=torch.float64)
        weights[[0, -1]] /= 2
    elif rule == "gausslegendre":
        nodes, gauss_weights = np.polynomial.legendre.leggauss(m)  # on [-1, 1]
        alphas, weights = torch.from_numpy((nodes + 1) / 2), torch.from_numpy(gauss_weights / 2)
    else:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    return alphas.to(device, dtype), weights.to(device, dtype)


def split_affine_head(net):
    """(head, body) with body(head(x)) == net(x) and `head` affine in x.

    The image of the straight path x' + a (x - x') under an affine map is the straight path
    between the images of its ends, so IG can interpolate after the head: that skips the head
    for each of the N * m points and pulls the summed gradient back through it once per image.
    For the CNN the head is the standardisation and the first convolution; for any other
    network it is the identity.
    """
    if type(net) is CNN:
        conv = net.features[0]
        # The first ReLU may work in place: it overwrites path points that nothing else needs.
        # Its output is stored channels-last, like the convolution weights (see
        # models.functional_state): on a CPU, average pooling runs several times faster on that
        # layout, and the second convolution then reads it without reordering it.
        body = nn.Sequential(nn.ReLU(inplace=True), ChannelsLast(), *net.features[2:], net.classifier)
        return (lambda x: conv((x - MNIST_MEAN) / MNIST_STD)), body
    return (lambda x: x), net


class ChannelsLast(nn.Module):
    """The identity on (N, C, H, W) tensors, returning a copy stored channels-last.

    Written with permutes because `vmap` does not support `contiguous(memory_format=...)`.
    """

    def forward(self, x):
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def weighted_path_output(offset, z_input, z_base, alphas, weights, target, body, params, buffers, bfloat16):
    """sum_k w_k F(z_base + offset + alpha_k (z_input - z_base)) for one image and S steps.

    `offset` is zero; it is added to every point of the path, so its gradient is the weighted
    sum sum_k w_k dF/dz over the points, which autograd adds up. `body` runs with `params` and
    `buffers` (torch.func.functional_call), under bfloat16 autocast if `bfloat16`.
    """
    points = torch.addcmul(z_base + offset, alphas.view(-1, *(1,) * z_input.dim()), z_input - z_base)
    with torch.autocast(points.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        logits = functional_call(body, (params, buffers), (points,))  # (S, 10)
    return weights @ logits.gather(1, target.expand(len(logits), 1)).squeeze(1).to(weights)


# d/d offset, for a chunk of images (z_input, z_base, target batched) and the same S steps each
SUMMED_GRADIENT = vmap(grad(weighted_path_output), in_dims=(None, 0, 0, None, None, 0, None, None, None, None))


@functools.cache
def compiled_summed_gradient():
    """SUMMED_GRADIENT compiled by torch.compile, made once per process and reused.

    A compilation that fails (it happens at the first call) becomes a UserError that says what to do.
    """
    compiled = torch.compile(SUMMED_GRADIENT)

    def summed_gradient(*args):
        try:
            return compiled(*args)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            reason = str(error).strip().splitlines()[0]
            raise UserError(
                f"torch.compile failed ({reason}); it needs a C++ compiler on a CPU and Triton on a GPU: "
                "install one, or run without --compile."
            ) from None

    return summed_gradient


def integrate_gradients(
    net,
    images,
    output_digit,
    steps_m=300,
    baseline=None,
    rule="right",
    batch_points=None,
    precision="float32",
    compile=False,
):
    """Integrated Gradients of output `output_digit` of `net` for `images` (N, 1, 28, 28).

    output_digit: one int, or one per image (N,). baseline: None for black (zeros), or a tensor
    that broadcasts to `images`. rule: one of RULES. The N * m path points are evaluated in
    chunks of at most `batch_points` (a chunk of whole images, or of steps of one image when m
    exceeds the budget; None: `default_batch_points` of the device), on the device of `net`;
    memory stays flat for any N and m.
    precision "bfloat16" runs the network under autocast (faster on GPUs, less exact).
    compile: evaluate the chunks with torch.compile, which fuses the element-wise work around
    the convolutions. The first call compiles (seconds); later calls reuse it, because the last
    chunk is padded to the shape of the others.
    Returns the attributions (N, 1, 28, 28) on the device and in the dtype of `images`.
    """
    device = next(net.parameters()).device
    x_all = images.to(device)
    n = len(x_all)
    base_all = torch.zeros_like(x_all) if baseline is None else baseline.to(x_all).expand_as(x_all)
    digits = torch.as_tensor(output_digit, device=device).expand(n)
    alphas, weights = quadrature(rule, steps_m, dtype=x_all.dtype, device=device)
    head, body = split_affine_head(net)
    params, buffers = functional_state(body)  # convolution weights channels-last
    bfloat16 = precision == "bfloat16"
    batch_points = batch_points or default_batch_points(device)
    images_per_chunk = max(1, batch_points // steps_m)
    steps_per_chunk = min(steps_m, batch_points)
    summed_gradient = SUMMED_GRADIENT
    if compile:
        summed_gradient = compiled_summed_gradient()
        # Give every chunk the same shape, so that torch.compile compiles once: pad the steps
        # with nodes of weight 0 and the images with copies of the last one (dropped below).
        alphas = pad_to_multiple(alphas, steps_per_chunk, 1.0)
        weights = pad_to_multiple(weights, steps_per_chunk, 0.0)
        x_all, base_all, digits = (pad_to_multiple(t, images_per_chunk) for t in (x_all, base_all, digits))
    attributions = []
    with torch.no_grad():  # torch.func.grad still differentiates; nothing else builds a graph
        for start in range(0, len(x_all), images_per_chunk):
            x = x_all[start : start + images_per_chunk]
            base = base_all[start : start + images_per_chunk]
            z_input, z_base = head(x), head(base)  # (n, 32, 26, 26) for the CNN
            total = torch.zeros_like(z_input)
            for s in range(0, len(alphas), steps_per_chunk):
                steps = slice(s, s + steps_per_chunk)
                offset = torch.zeros_like(z_input[0])
                chunk = (offset, z_input, z_base, alphas[steps], weights[steps], digits[start : start + len(x)])
                total += summed_gradient(*chunk, body, params, buffers, bfloat16)
            _, pull_back = vjp(head, x)
            mean_gradient = pull_back(total)[0]  # (n, 1, 28, 28): sum_k w_k dF/dx at the path points
            attributions.append((x - base) * mean_gradient)
    return torch.cat(attributions)[:n].to(images.device)


def pad_to_multiple(values, multiple, fill=None):
    """`values` (K, ...) lengthened to a multiple of `multiple` rows: `fill`, or copies of the last row."""
    missing = -len(values) % multiple
    if not missing:
        return values
    padding = values[-1:].expand(missing, *values.shape[1:])
    if fill is not None:
        padding = torch.full_like(padding, fill)
    return torch.cat([values, padding])


def precision_deviation(reduced, exact):
    """How far attributions (N, ...) computed in reduced precision lie from `exact` (float32) ones.

    Returns (largest |difference| / largest |exact|, median over the images of
    ||difference|| / ||exact||).
    """
    difference = reduced.float() - exact.float()
    largest = float(difference.abs().max() / exact.abs().max())
    per_image = difference.flatten(1).norm(dim=1) / exact.float().flatten(1).norm(dim=1)
    return largest, float(per_image.median())


def target_outputs(net, images, output_digit, batch_size=1000):
    """F(images): the output `output_digit` (an int or one per image) of `net`, shape (N,)."""
    device = next(net.parameters()).device
    digits = torch.as_tensor(output_digit, device=device).expand(len(images))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = net(images[start : start + batch_size].to(device))
            outputs.append(logits.gather(1, digits[start : start + batch_size, None]).squeeze(1))
    return torch.cat(outputs).to(images.device)


def completeness_gap(net, images, attributions, output_digit, baseline=None):
    """sum_i attr_i - (F(x) - F(x')) per image, (N,). Zero for exact integration.

    baseline: None (black), one per image (N, 1, 28, 28), or several per image (D, N, 1, 28, 28),
    whose mean output is subtracted (the attributions are then the mean over the D baselines).
    """
    if baseline is None:
        baseline = torch.zeros_like(images)
    baselines = baseline.expand_as(images)[None] if baseline.dim() == images.dim() else baseline
    f_base = torch.stack([target_outputs(net, b, output_digit) for b in baselines]).mean(0)
    return attributions.flatten(1).sum(1) - (target_outputs(net, images, output_digit) - f_base)


def blurred(images, sigma=BLUR_SIGMA):
    """A Gaussian blur of `images` (N, 1, 28, 28): a baseline that keeps the rough shape."""
    return gaussian_blur(images, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)


def noise_baselines(images, draws, generator=None):
    """`draws` uniform-noise images per input, (D, N, 1, 28, 28), pixels in [0, 1]."""
    return torch.rand((draws, *images.shape), generator=generator).to(images)


def make_baselines(kind, images, draws=8, generator=None):
    """The baselines of `kind` (one of BASELINES) for `images`: (N, ...) or (D, N, ...) for noise."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blur":
        return blurred(images)
    if kind == "noise":
        return noise_baselines(images, draws, generator)
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


def integrated_gradients_averaged(net, images, output_digit, baselines, **options):
    """Integrated Gradients averaged over the baselines (D, N, 1, 28, 28), or for one (N, ...)."""
    if baselines.dim() == images.dim():
        return integrate_gradients(net, images, output_digit, baseline=baselines, **options)
    total = sum(integrate_gradients(net, images, output_digit, baseline=b, **options) for b in baselines)
    return total / len(baselines)


def smooth_grad(attribute, images, samples, sigma=0.15, generator=None):
    """SmoothGrad (Smilkov et al. 2017): the mean of `attribute(noisy images)` over `samples` draws.

    attribute: images -> attributions. sigma: the standard deviation of the Gaussian noise in
    pixel units ([0, 1]). It smooths the map; completeness then holds only on average.
    """
    total = 0
    for _ in range(samples):
        noise = torch.randn(images.shape, generator=generator).to(images)
        total = total + attribute(images + sigma * noise)
    return total / samples


def input_gradients(net, images, output_digit):
    """Plain gradients dF/dx (N, 1, 28, 28), the saliency map that IG is compared with."""
    device = next(net.parameters()).device
    digits = torch.as_tensor(output_digit, device=device).expand(len(images))

    def output(x, target):
        return net(x[None])[0].gather(0, target[None]).squeeze(0)

    with torch.no_grad():
        return vmap(grad(output))(images.to(device), digits).to(images.device)


# Figures ----------------------------------------------------------------------------------------

LAYER_NAMES = {
    "classifier.3": "logits",
    "classifier.1": "fc 256",
    "features.6": "conv3",
    "features.3": "conv2",
    "features.0": "conv1",
}


def symmetric_norm(values):
    """A colour scale centred at zero that covers `values`."""
    from matplotlib.colors import TwoSlopeNorm

    limit = float(values.abs().max()) or 1.0
    return TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)


def plot_attributions(images, attributions, labels, digits, title, per_class=3):
    """Input, signed attribution and overlay for `per_class` digits of every class; one scale per row."""
    import matplotlib.pyplot as plt

    classes = [c for c in range(10) if (labels == c).any()]
    fig, axes = plt.subplots(
        len(classes),
        3 * per_class,
        figsize=(2.0 * 3 * per_class + 1, 2.1 * len(classes) + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for row, c in zip(axes, classes):
        index = torch.nonzero(labels == c).flatten()[:per_class]
        norm = symmetric_norm(attributions[index])
        for j in range(per_class):
            cells = row[3 * j : 3 * j + 3]
            for ax in cells:
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(index):
                for ax in cells:
                    ax.axis("off")
                continue
            i = index[j]
            image, attribution = images[i, 0].numpy(), attributions[i, 0].numpy()
            cells[0].imshow(image, cmap="gray", vmin=0, vmax=1)
            cells[0].set_title(f"digit {labels[i]}, explained as {digits[i]}", fontsize=8)
            shown = cells[1].imshow(attribution, cmap="RdBu_r", norm=norm)
            cells[1].set_title(f"attribution, sum {attribution.sum():.1f}", fontsize=8)
            cells[2].imshow(image, cmap="gray", vmin=0, vmax=2.5)  # dimmed, so the colours stand out
            opacity = np.clip(np.abs(attribution) / norm.vmax, 0, 1)
            cells[2].imshow(attribution, cmap="RdBu_r", norm=norm, alpha=opacity)
            cells[2].set_title("overlay on the input", fontsize=8)
        fig.colorbar(shown, ax=list(row), fraction=0.015, pad=0.01, label="attribution")
    fig.suptitle(
        title + "\nred: pixels that raise the output of the explained digit, blue: pixels that lower it; "
        "one colour scale per row",
    )
    return fig


def plot_class_means(attributions, digits, title):
    """Mean attribution over the images explained as each digit, one shared scale."""
    import matplotlib.pyplot as plt

    classes = [c for c in range(10) if (digits == c).any()]
    means = torch.stack([attributions[digits == c].mean(0)[0] for c in classes])
    norm = symmetric_norm(means)
    columns = min(5, len(classes))
    rows = math.ceil(len(classes) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns + 1, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c, mean in zip(axes.flat, classes, means):
        shown = ax.imshow(mean.numpy(), cmap="RdBu_r", norm=norm)
        ax.set_title(f"digit {c} ({int((digits == c).sum())} images)", fontsize=9)
    fig.colorbar(shown, ax=list(axes.flat), fraction=0.02, pad=0.02, label="mean attribution")
    fig.suptitle(title)
    return fig


def plot_completeness(steps, relative_gaps, title):
    """Median relative completeness gap against the number of steps, one line per rule (log-log)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rule, gaps in relative_gaps.items():
        ax.loglog(steps, gaps, marker="o", label=rule)
    ax.loglog(steps, [1 / m for m in steps], "k:", label="1/m (for reference)")
    ax.set_xticks(steps, [str(m) for m in steps])
    ax.minorticks_off()
    ax.set_xlabel("steps m")
    ax.set_ylabel("median |sum of attributions - (F(x) - F(x'))|\n/ |F(x) - F(x')|")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def plot_randomisation_maps(stages, maps, images, title):
    """Attribution maps (rows: images) of the trained model and its cascading randomisations."""
    import matplotlib.pyplot as plt

    rows = len(images)
    fig, axes = plt.subplots(rows, len(stages) + 1, figsize=(1.8 * (len(stages) + 1) + 1, 1.9 * rows), squeeze=False)
    for i, row in enumerate(axes):
        row[0].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        for s, ax in enumerate(row[1:]):
            # each map divided by its own largest |value|: a randomised network's outputs have another size
            shown = ax.imshow((maps[s, i, 0] / maps[s, i].abs().max()).numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        if i == 0:
            row[0].set_title("input", fontsize=9)
            for s, ax in enumerate(row[1:]):
                ax.set_title(stage_label(stages[s]), fontsize=9)
    fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="attribution / its largest |value|")
    fig.suptitle(title)
    return fig


def stage_label(stage):
    return stage if stage == "trained" else f"+ {LAYER_NAMES.get(stage, stage)} random"


def plot_randomisation(stages, correlations, title):
    """Spearman correlation of |IG| with the trained model's, per randomisation stage."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    positions = range(len(stages))
    for i in range(correlations.shape[1]):
        ax.plot(positions, correlations[:, i], color="0.7", lw=0.8, label="one test digit" if i == 0 else None)
    ax.plot(positions, correlations.nanmean(1), "o-", color="C3", lw=2, label="mean over the images")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(list(positions), [stage_label(s) for s in stages], rotation=30, ha="right")
    ax.set_xlabel("layers re-initialised, cascading from the logits down")
    ax.set_ylabel("Spearman rank correlation of |attribution|\nwith the trained model's (on the digit's pixels)")
    ax.set_ylim(-0.3, 1.05)
    ax.set_title(title)
    ax.legend()
    return fig


def plot_deletion(fractions, curves, title):
    """Mean probability of the explained digit as pixels are removed, one line per ordering."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, probabilities in curves.items():
        auc = area_under_curve(fractions, probabilities).mean()
        ax.plot(fractions, probabilities.mean(0), label=f"{name} (mean probability {auc:.3f})")
    ax.set_xlabel("fraction of the 784 pixels removed (set to black), highest-ranked first")
    ax.set_ylabel("probability of the explained digit")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="pixel order (lower is more faithful)")
    return fig


# The script -------------------------------------------------------------------------------------

SWEEP_STEPS = (2, 4, 8, 16, 32, 64, 128, 256)
SWEEP_IMAGES = 6
RANDOMISATION_IMAGES = 8
RANDOMISATION_STEPS = 50
DELETION_FRACTIONS = torch.linspace(0, 0.25, 26)
PRECISION_CHECK_IMAGES = 16


def completeness_sweep(net, images, digits, steps=SWEEP_STEPS, batch_points=None):
    """{rule: [median |gap| / |F(x) - F(x')| for each m in steps]} with the black baseline."""
    change = target_outputs(net, images, digits) - target_outputs(net, torch.zeros_like(images), digits)
    sweep = {}
    for rule in RULES:
        sweep[rule] = []
        for m in steps:
            attributions = integrate_gradients(net, images, digits, m, rule=rule, batch_points=batch_points)
            gap = completeness_gap(net, images, attributions, digits)
            sweep[rule].append(float((gap.abs() / change.abs()).median()))
    return sweep


def choose_images(args, images, labels, predictions):
    """Indices of the test digits to explain and the digit to explain for each."""
    if args.digit is None:
        index = torch.arange(min(args.num_images, len(images)))
        return index, predictions[index]
    index = torch.nonzero(labels == args.digit).flatten()[: args.num_images]
    return index, torch.full((len(index),), args.digit)


def synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_integrated_gradients(args, model, device):
    """Explain the chosen test digits, report completeness, run the sanity checks, write figures."""
    test_images, test_labels = get_mnist_test_data()
    x_test = to_float_images(test_images, device)
    with torch.no_grad():
        predictions = torch.cat([model(x).argmax(1) for x, _ in batches(x_test, x_test, 1000)]).cpu()
    print(f"test accuracy {(predictions == test_labels).float().mean():.2%} on {len(test_labels)} test digits")
    if args.num_images > len(test_images):
        raise UserError(f"--num-images {args.num_images} is more than the {len(test_images)} test digits; use fewer.")
    index, digits = choose_images(args, test_images, test_labels, predictions)
    images, labels = x_test[index], test_labels[index]
    generator = torch.Generator().manual_seed(args.seed)
    baselines = make_baselines(args.baseline, images.cpu(), args.noise_draws, generator).to(device)
    options = {
        "steps_m": args.steps,
        "rule": args.rule,
        "batch_points": args.batch_points,
        "precision": args.precision,
        "compile": args.compile,
    }

    def explain(x):
        return integrated_gradients_averaged(model, x, digits, baselines, **options)

    described = f"{args.baseline} baseline, m = {args.steps}, {args.rule} rule"
    if args.baseline == "noise":
        described = f"uniform-noise baseline ({args.noise_draws} draws), m = {args.steps}, {args.rule} rule"
    if args.smoothgrad:
        described += f", SmoothGrad {args.smoothgrad} x sigma {args.smoothgrad_sigma}"
    if args.precision != "float32":
        described += f", {args.precision} autocast"
    points = len(images) * args.steps * (args.noise_draws if args.baseline == "noise" else 1) * max(1, args.smoothgrad)
    synchronise(device)
    start = time.perf_counter()
    if args.smoothgrad:
        attributions = smooth_grad(explain, images, args.smoothgrad, args.smoothgrad_sigma, generator)
    else:
        attributions = explain(images)
    synchronise(device)
    seconds = time.perf_counter() - start
    print(
        f"Integrated Gradients ({described}) for {len(images)} test digits: {points:,} path points "
        f"in {seconds:.1f} s ({points / seconds:,.0f} points/s) on {device}"
        + (", including the one-off torch.compile" if args.compile else "")
    )
    if args.precision != "float32":
        # plain IG was just computed; with SmoothGrad the inputs were noisy, so compute it anew
        report_precision(model, images, digits, baselines, options, None if args.smoothgrad else attributions)

    gap = completeness_gap(model, images, attributions, digits, baselines)
    change = gap - attributions.flatten(1).sum(1)  # -(F(x) - F(x'))
    relative_gap = (gap.abs() / change.abs()).cpu()
    print(
        f"completeness, sum of attributions - (F(x) - F(x')) per image: median |gap| {gap.abs().median():.2e}, "
        f"max {gap.abs().max():.2e}; relative to |F(x) - F(x')|: median {relative_gap.median():.2%}, "
        f"max {relative_gap.max():.2%}"
        + (" (SmoothGrad adds noise to x, so this is not expected to be 0)" if args.smoothgrad else "")
    )

    images_cpu, attributions_cpu = images.cpu(), attributions.cpu()
    on = f"{len(images)} MNIST test digits"
    written = [
        save_figure(
            plot_attributions(images_cpu, attributions_cpu, labels, digits, f"Integrated Gradients ({described})"),
            args.out / "ig_attributions.png",
        ),
        save_figure(
            plot_class_means(attributions_cpu, digits, f"Mean IG attribution per explained digit\n({on}, {described})"),
            args.out / "ig_class_means.png",
        ),
    ]
    if not args.skip_checks:
        written += run_checks(args, model, images, digits, attributions, described)
    for path in written:
        print(f"wrote {relative(path)}")


def report_precision(model, images, digits, baselines, options, reduced=None, count=PRECISION_CHECK_IMAGES):
    """Print how far the reduced-precision IG of the first `count` images lies from float32.

    reduced: the reduced-precision plain IG of `images` when already computed (only its first
    `count` rows are used), else None.
    """
    k = min(count, len(images))
    subset = baselines[:k] if baselines.dim() == images.dim() else baselines[:, :k]
    if reduced is None:
        reduced = integrated_gradients_averaged(model, images[:k], digits[:k], subset, **options)
    reduced = reduced[:k]
    exact_options = {**options, "precision": "float32", "compile": False}
    exact = integrated_gradients_averaged(model, images[:k], digits[:k], subset, **exact_options)
    largest, median = precision_deviation(reduced, exact)
    print(
        f"{options['precision']} against float32 on the first {k} digits (plain IG): largest difference "
        f"{largest:.1e} of the largest |attribution|, median per-image relative L2 error {median:.1e}"
    )


def run_checks(args, model, images, digits, attributions, described):
    """Completeness against m, the randomisation test and the deletion curve; returns figure paths."""
    subset = slice(0, SWEEP_IMAGES)
    sweep = completeness_sweep(model, images[subset], digits[subset], batch_points=args.batch_points)
    print("completeness gap (median relative, black baseline) at m = " + ", ".join(map(str, SWEEP_STEPS)) + ":")
    for rule, gaps in sweep.items():
        print(f"  {rule:>13}: " + " ".join(f"{g:.1e}" for g in gaps))
    written = [
        save_figure(
            plot_completeness(
                SWEEP_STEPS,
                sweep,
                f"Completeness gap of IG against the number of steps\n({len(images[subset])} MNIST test digits, black baseline)",
            ),
            args.out / "ig_completeness.png",
        )
    ]

    subset = slice(0, RANDOMISATION_IMAGES)
    steps = min(args.steps, RANDOMISATION_STEPS)

    def explain(net, x, d):
        return integrate_gradients(net, x, d, steps, rule=args.rule, batch_points=args.batch_points)

    x = images[subset]
    stages, correlations, maps = randomisation_test(model, explain, x, digits[subset], mask=x != 0, seed=args.seed)
    print(
        "randomisation test, mean Spearman correlation of |IG| with the trained model's: "
        + ", ".join(f"{stage_label(s)} {c:.2f}" for s, c in zip(stages, correlations.nanmean(1)))
    )
    title = f"Model-parameter randomisation test ({len(x)} MNIST test digits, black baseline, m = {steps})"
    written.append(save_figure(plot_randomisation(stages, correlations, title), args.out / "ig_randomisation.png"))
    maps_title = f"IG maps as the layers are re-initialised from the logits down\n(MNIST test digits, black baseline, m = {steps})"
    written.append(
        save_figure(
            plot_randomisation_maps(stages, maps[:, :4].cpu(), x[:4].cpu(), maps_title),
            args.out / "ig_randomisation_maps.png",
        )
    )

    generator = torch.Generator().manual_seed(args.seed)
    orders = {
        "Integrated Gradients": attributions,
        "plain gradient": input_gradients(model, images, digits),
        "random": torch.rand(images.shape, generator=generator).to(images),
    }
    curves = {
        name: deletion_curve(model, images, digits, scores, DELETION_FRACTIONS).cpu() for name, scores in orders.items()
    }
    print(
        "pixel deletion, mean probability of the explained digit over the first 25% of pixels removed "
        "(lower is more faithful): "
        + ", ".join(f"{name} {area_under_curve(DELETION_FRACTIONS, c).mean():.3f}" for name, c in curves.items())
    )
    title = f"Pixel deletion on {len(images)} MNIST test digits ({described})"
    written.append(save_figure(plot_deletion(DELETION_FRACTIONS, curves, title), args.out / "ig_deletion.png"))
    return written


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    training = parser.add_argument_group("training (used with --retrain or when the weights file is missing)")
    parser.add_argument(
        "--weights",
        type=Path,
        default=WEIGHTS_PATH,
        help=f"checkpoint to load, or to write when training (default: {relative(WEIGHTS_PATH)})",
    )
    parser.add_argument("--retrain", action="store_true", help="train anew and replace the weights file (default: off)")
    parser.add_argument(
        "--train-only", action="store_true", help="stop after training or loading and testing (default: off)"
    )
    training.add_argument("--epochs", type=positive_int, default=4, help="training epochs (default: 4)")
    training.add_argument("--batch-size", type=positive_int, default=128, help="training batch size (default: 128)")
    training.add_argument("--lr", type=learning_rate, default=3e-3, help="peak Adam learning rate (default: 0.003)")
    training.add_argument(
        "--val-size",
        type=non_negative_int,
        default=5000,
        help="training digits held out for validation; 0 trains on all 60,000 (default: 5000)",
    )
    training.add_argument(
        "--train-size",
        type=non_negative_int,
        default=0,
        help="use only this many training digits, 0 for all (default: 0)",
    )
    explain = parser.add_argument_group("Integrated Gradients")
    explain.add_argument(
        "--digit",
        type=digit,
        default=None,
        help="explain only test digits of this class, for this output (default: the first test digits, "
        "each for its predicted class)",
    )
    explain.add_argument("--num-images", type=positive_int, default=400, help="test digits to explain (default: 400)")
    explain.add_argument("--steps", type=positive_int, default=300, help="summation steps m (default: 300)")
    explain.add_argument(
        "--rule", choices=RULES, default="right", help="integration rule (default: right, the exercise's sum)"
    )
    explain.add_argument(
        "--baseline",
        choices=BASELINES,
        default="black",
        help=f"black image, Gaussian blur (sigma {BLUR_SIGMA} px) of the input, or uniform noise (default: black)",
    )
    explain.add_argument(
        "--noise-draws",
        type=positive_int,
        default=8,
        help="noise baselines averaged over with --baseline noise (default: 8)",
    )
    explain.add_argument(
        "--smoothgrad",
        type=non_negative_int,
        default=0,
        help="average IG over this many noisy copies of each input, 0 = off (default: 0)",
    )
    explain.add_argument(
        "--smoothgrad-sigma",
        type=positive_float,
        default=0.15,
        help="standard deviation of the SmoothGrad noise in pixel units (default: 0.15)",
    )
    explain.add_argument(
        "--batch-points",
        type=positive_int,
        default=None,
        help="path points (image x step) evaluated at once; bounds the memory "
        f"(default: {CPU_BATCH_POINTS} on a CPU, {GPU_BATCH_POINTS} on a GPU)",
    )
    explain.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16 runs the network under autocast: faster on recent GPUs, less exact (default: float32)",
    )
    explain.add_argument(
        "--compile",
        action="store_true",
        help="compile the path evaluation with torch.compile, which fuses its element-wise work: "
        "about 1.5x faster on a CPU after a one-off compile of 5-30 s; needs a C++ compiler "
        "(CPU) or Triton (GPU) (default: off)",
    )
    explain.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip the completeness sweep, randomisation test and deletion curve (default: off)",
    )
    add_common_arguments(parser)
    return parser


def main():
    args = build_parser().parse_args()
    check_output_folder(args.out)
    device = get_device(args.device)
    model = get_model(args, device)
    if args.train_only:
        if not args.retrain:
            test_images, test_labels = get_mnist_test_data()
            accuracy = test(model, to_float_images(test_images, device), test_labels.to(device))
            print(f"test accuracy {accuracy:.2%} on {len(test_images)} test digits")
        return
    set_seed(args.seed)
    start = time.perf_counter()
    run_integrated_gradients(args, model, device)
    print(f"explained in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    run_main(main)
