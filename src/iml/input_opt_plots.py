"""Figure and tables of ``python -m iml input-opt-regularized``: plain against regularized optima; and the
ascent curves that src/input_opt.py's `plot_curves` draws.

Image-like rows share one grey scale from 0 (black) to 1 (white), as MNIST is shown; unbounded (unclipped)
optima a diverging map centred at zero. The plain optima themselves are input_opt_grid.png's, drawn by
src/input_opt.py, and are not repeated here.
"""

import textwrap

import torch

from iml.outputs import save_figure


def describe(penalties, parametrization):
    """The regularizers in words, for titles and log lines."""
    p, q = penalties, parametrization
    parts = [
        f"L2 {p.l2:g}" if p.l2 else "no L2",
        f"TV {p.tv:g}" if p.tv else "no TV",
        f"jitter {q.jitter} px" if q.jitter else "no jitter",
        f"blur sigma {q.blur:g} px" if q.blur else "no blur",
        "clip to [0, 1]" if q.clip else "no clipping",
    ]
    return ", ".join(parts)


@torch.no_grad()
def classify(model, images):
    """Predicted digit and its probability for images (..., 1, 28, 28)."""
    from iml.attribution import network_device

    device = network_device(model, images, "classify")
    flat = images.reshape(-1, 1, 28, 28).to(device)
    probabilities = model(flat).softmax(1)
    confidence, predicted = probabilities.max(1)
    shape = images.shape[:-3]
    return predicted.view(shape).cpu(), confidence.view(shape).cpu()


GREY = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}  # pixels as MNIST shows them: 0 black, 1 white


def _show_row(ax, images, scale, label, captions, titles=None):
    """Draw a row of images (K, 1, 28, 28) side by side in one axes on `scale` (cmap, vmin, vmax); returns the image.

    One axes per row instead of one per image keeps drawing fast; white gaps separate the images.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cmap = plt.get_cmap(scale["cmap"]).with_extremes(bad="white")
    size, gap = images.shape[-1], 4
    canvas = torch.full((size, len(images) * (size + gap) - gap), float("nan"))  # NaN: the gaps
    left = [k * (size + gap) for k in range(len(images))]
    for x, image in zip(left, images):
        canvas[:, x : x + size] = image[0]
    shown = ax.imshow(canvas.numpy(), cmap=cmap, vmin=scale["vmin"], vmax=scale["vmax"])
    for x in left:
        ax.add_patch(
            Rectangle((x - 0.5, -0.5), size, size, fill=False, linewidth=0.6, edgecolor="black", clip_on=False)
        )
    centers = [x + (size - 1) / 2 for x in left]
    ax.set_xticks(centers, captions, fontsize=9)
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.set_ylabel(label, fontsize=10)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for x, text in zip(centers, titles or ()):
        ax.text(x, -2, text, ha="center", va="bottom", fontsize=11)
    return shown


def _colorbar(fig, shown, axes, values, label):
    """One colour bar for the rows `axes`; pointed ends when `values` leave its range (drawn as its end colours)."""
    low, high = shown.get_clim()
    below, above = float(values.min()) < low, float(values.max()) > high
    extend = "both" if below and above else "min" if below else "max" if above else "neither"
    bar = fig.colorbar(shown, ax=list(axes), fraction=0.02, pad=0.01, extend=extend)
    bar.set_label(label + ("\n(arrow: beyond)" if extend != "neither" else ""), fontsize=10)
    bar.ax.tick_params(labelsize=9)


def plot_ascent_curves(ascent, title):
    """src/input_opt.py's `plot_curves`: the logit y_i (left) and its softmax probability p_i (right) of an
    `Ascent` per step, a row per start and a line per digit."""
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.arange(ascent.logit.shape[0])
    size = (11, 3.2 * len(ascent.start_names) + 0.6)
    fig, axes = plt.subplots(len(ascent.start_names), 2, figsize=size, squeeze=False, layout="constrained")
    for (s, column), ax in np.ndenumerate(axes):
        values, name = ((ascent.logit, "logit $y_i$"), (ascent.probability, "softmax probability $p_i$"))[column]
        for k, neuron in enumerate(ascent.neurons):
            ax.plot(steps, values[:, s, k].numpy(), color=plt.get_cmap("tab10")(neuron), label=f"digit {neuron}")
        ax.set(xlabel="step", ylabel=f"{ascent.start_names[s]} start\n{name}", title=f"{name} of the target digit")
        ax.grid(alpha=0.3)
        if column == 1:  # the probability saturates within a few steps: a logarithmic step axis shows them
            ax.set(ylim=(-0.02, 1.02), xscale="symlog", xlim=(0, len(steps) - 1), xlabel="step (logarithmic axis)")
            ax.xaxis.set_major_formatter("{x:g}")
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_comparison(plain, regularized, start_names, title, confident):
    """Top rows: the plain ascent's input when the target first reached probability `confident`, one per start;
    bottom rows: the regularized optimum. Image-like rows share one grey scale (0 black, 1 white, as MNIST);
    unclipped regularized optima are unbounded and get a diverging scale centred at zero instead."""
    import matplotlib.pyplot as plt

    S, K = plain.images.shape[:2]
    size = (1.45 * K + 2.4, 1.75 * 2 * S + 1.2)
    fig, axes = plt.subplots(2 * S, 1, figsize=size, squeeze=False, layout="constrained")
    axes = axes[:, 0]
    signed = not regularized.parametrization.clip
    bound = max(float(regularized.images.abs().max()), 1e-6)
    scale = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound} if signed else GREY
    for s, name in enumerate(start_names):
        steps = [plain.confident_step[s, k].item() for k in range(K)]
        sure = [f"step {step}" if step >= 0 else "never (final)" for step in steps]
        first = _show_row(
            axes[s],
            plain.confident_images[s],
            GREY,
            f"{name} start\nplain, first\np ≥ {confident}",
            sure,
            [f"digit {n}" for n in plain.neurons] if s == 0 else None,
        )
        final = [f"y={regularized.logit[-1, s, k]:.0f}, p={regularized.probability[-1, s, k]:.3f}" for k in range(K)]
        last = _show_row(axes[S + s], regularized.images[s], scale, f"{name} start\nregularized", final)
    grey_label = "pixel value\n0 black, 1 white"
    if signed:
        _colorbar(fig, first, axes[:S], plain.confident_images, grey_label)
        _colorbar(fig, last, axes[S:], regularized.images, "pixel value\nred > 0, blue < 0")
    else:
        _colorbar(fig, first, axes, torch.stack([plain.confident_images, regularized.images]), grey_label)
    characters = int(size[0] * 72 / (0.55 * 11))  # the title's lines wrapped to the figure's width
    fig.suptitle("\n".join(textwrap.fill(line, characters) for line in title.split("\n")), fontsize=11)
    return fig


def format_table(result, start_names, predicted, confident):
    """One line per digit and, per start: final logit, probability, predicted class, first sure step."""
    cell = f"{'logit':>8} {'probability':>11} {'class':>5} {'sure at':>7}"
    header = f"{'digit':>5}" + "".join(f" | {name + ' start':^{len(cell)}}" for name in start_names)
    sub = f"{'':>5}" + f" | {cell}" * len(start_names)
    lines = [header, sub, "-" * len(sub)]
    for k, neuron in enumerate(result.neurons):
        line = f"{neuron:>5}"
        for s in range(len(start_names)):
            sure = result.confident_step[s, k].item()
            line += (
                f" | {result.logit[-1, s, k].item():8.1f} {result.probability[-1, s, k].item():11.6f}"
                f" {predicted[s, k].item():>5} {sure if sure >= 0 else 'never':>7}"
            )
        lines.append(line)
    lines.append(f"sure at: the first step at which the target's probability reached {confident}")
    return "\n".join(lines)


def write_comparison(args, network, start_names, plain, regular, regularizers, confident):
    """Draw plain against regularized optima into args.out/input_opt_regularized.png; returns its path."""
    title = (
        f"Plain vs regularized gradient ascent on the input of {network}, {args.steps} Adam steps (lr {args.lr:g})\n"
        f"top: plain, the input when the target's probability p first reached {confident} (its final optimum: "
        f"input_opt_grid.png); bottom: regularized, after the last step (y logit, p probability)\n"
        f"regularizers: {regularizers}"
    )
    comparison = plot_comparison(plain, regular, start_names, title, confident)
    return save_figure(comparison, args.out / "input_opt_regularized.png")
