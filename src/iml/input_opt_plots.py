"""Figure and tables of ``python -m iml input-opt-regularized``: plain against regularized optima.

Unbounded (signed) images use a diverging map centred at zero; clipped, image-like ones a grey scale
from 0 (black) to 1 (white). (The exercise's own figures are drawn in src/input_opt.py.)
"""

import torch

from iml.common import save_figure


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
    device = next(model.parameters()).device
    flat = images.reshape(-1, 1, 28, 28).to(device)
    probabilities = model(flat).softmax(1)
    confidence, predicted = probabilities.max(1)
    shape = images.shape[:-3]
    return predicted.view(shape).cpu(), confidence.view(shape).cpu()


def _show_row(fig, ax, images, signed, label, captions, titles=None):
    """Draw a row of images (K, 1, 28, 28) side by side in one axes, with a colour bar.

    Unbounded (signed) rows use a diverging map centred at zero; image-like rows use grey with
    black at 0 and white at 1 (widened when pixels leave [0, 1]). One axes per row instead of one
    per image keeps drawing fast.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if signed:
        bound = max(float(images.abs().max()), 1e-6)
        name, low, high = "RdBu_r", -bound, bound
    else:
        name, low, high = "gray", min(0.0, float(images.min())), max(1.0, float(images.max()))
    cmap = plt.get_cmap(name).with_extremes(bad="white")
    size, gap = images.shape[-1], 4
    canvas = torch.full((size, len(images) * (size + gap) - gap), float("nan"))  # NaN: the gaps
    left = [k * (size + gap) for k in range(len(images))]
    for x, image in zip(left, images):
        canvas[:, x : x + size] = image[0]
    shown = ax.imshow(canvas.numpy(), cmap=cmap, vmin=low, vmax=high)
    for x in left:
        ax.add_patch(
            Rectangle((x - 0.5, -0.5), size, size, fill=False, linewidth=0.6, edgecolor="black", clip_on=False)
        )
    centers = [x + (size - 1) / 2 for x in left]
    ax.set_xticks(centers, captions, fontsize=8)
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.set_ylabel(label, fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for x, text in zip(centers, titles or ()):
        ax.text(x, -2, text, ha="center", va="bottom", fontsize=10)
    bar = fig.colorbar(shown, ax=ax, fraction=0.015, pad=0.01)
    bar.set_label("pixel value\n(MNIST: 0 black, 1 white)", fontsize=7)
    bar.ax.tick_params(labelsize=7)


def plot_comparison(plain, regularized, start_names, title, confident):
    """Per start three rows: plain input when first sure, plain optimum, regularized optimum."""
    import matplotlib.pyplot as plt

    S, K = plain.images.shape[:2]
    fig, axes = plt.subplots(3 * S, 1, figsize=(1.45 * K + 1.2, 1.6 * 3 * S + 0.7), squeeze=False, layout="constrained")
    for s in range(S):
        name = f"{start_names[s]} start"
        steps = [plain.confident_step[s, k].item() for k in range(K)]
        _show_row(
            fig,
            axes[3 * s, 0],
            plain.confident_images[s],
            False,
            f"{name}\nplain, first\np ≥ {confident}",
            [f"step {step}" if step >= 0 else "never" for step in steps],
            [f"digit {n}" for n in plain.neurons] if s == 0 else None,
        )
        _show_row(
            fig,
            axes[3 * s + 1, 0],
            plain.images[s],
            True,
            f"{name}\nplain, final",
            [f"p={plain.probability[-1, s, k]:.4f}" for k in range(K)],
        )
        _show_row(
            fig,
            axes[3 * s + 2, 0],
            regularized.images[s],
            not regularized.parametrization.clip,
            f"{name}\nregularized",
            [f"p={regularized.probability[-1, s, k]:.4f}" for k in range(K)],
        )
    fig.suptitle(title, fontsize=10)
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
        f"Plain gradient ascent vs regularized, {network}, {args.steps} Adam steps (lr {args.lr:g}); "
        f"p = softmax probability of the target digit\nregularizers: {regularizers}"
    )
    comparison = plot_comparison(plain, regular, start_names, title, confident)
    return save_figure(comparison, args.out / "input_opt_regularized.png")
