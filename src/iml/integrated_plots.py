"""Figures of Task 2: attributions, class means, completeness against m, the randomisation test
and pixel deletion. Signed maps use a diverging colour map centred at zero.
"""

import math

import numpy as np
import torch

from iml.attribution import area_under_curve

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


def plot_exact_errors(steps, table, pieces, title):
    """One panel per rule: the true error of IG against exact IG and the completeness gap, against m.

    table: {rule: (errors (S, N), gaps (S, N))} for the S values of `steps` and N digits; the lines
    are medians over the digits, the bands their range. pieces (N,): linear pieces of each path.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(3.6 * len(table), 4.2), sharey=True, squeeze=False)
    for ax, (rule, (errors, gaps)) in zip(axes[0], table.items()):
        for values, label, style in ((errors, "true error", "-"), (gaps, "completeness gap", "--")):
            values = values.clamp_min(1e-17)  # an exact zero has no place on a log scale
            line = ax.loglog(steps, values.median(1).values, style, marker="o", ms=3, label=label)[0]
            ax.fill_between(steps, values.min(1).values, values.max(1).values, color=line.get_color(), alpha=0.15)
        ax.axhline(0.01, color="grey", lw=0.8, ls=":", label="1 %")
        ax.set_xticks(steps, [str(m) for m in steps], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("steps m")
        ax.set_title(rule, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("relative error (median; band: range over digits)")
    axes[0][0].legend(fontsize=8)
    pieces = ", ".join(map(str, pieces.tolist()))
    fig.suptitle(
        f"{title}\ntrue error = ||IG - IG_exact|| / ||IG_exact||; exact IG from {pieces} linear pieces per path"
    )
    fig.tight_layout()
    return fig


def plot_randomization_maps(stages, maps, images, title):
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
    """A randomisation stage's name as the figures show it: "trained" or "+ conv2 random"."""
    return stage if stage == "trained" else f"+ {LAYER_NAMES.get(stage, stage)} random"


def plot_randomization(stages, correlations, title):
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
