"""Figures of Task 2: the exercise's attributions per class and their means (drawn for
src/mnist_integrated.py's `plot_attributions` and `plot_class_means`), and those of the IG commands
(`python -m iml ig`, `ig-checks`, `ig-exact`): attribution maps, completeness against m, exact IG's
true error, the randomization test and pixel deletion. Signed maps use a diverging colour map
centred at zero.
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
MAX_SHOWN_PER_CLASS = 6  # more digits per class would shrink every panel below legibility
PANEL_INCHES = 1.1


def symmetric_norm(values):
    """A colour scale centred at zero that covers `values`."""
    from matplotlib.colors import TwoSlopeNorm

    limit = float(values.abs().max()) or 1.0
    return TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)


def wrapped(title, width_inches, fontsize):
    """`title` with each line wrapped to about the width of a figure `width_inches` wide."""
    import textwrap

    characters = max(20, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, characters) for line in title.split("\n"))


def robust_limit(values, percentile=99.5):
    """(limit, extend): a symmetric colour limit at the `percentile` of the non-zero |values|, so that a few
    extreme pixels do not wash out the rest, and "both" when some values reach beyond it, else "neither"."""
    magnitude = values.abs().flatten().double().numpy()
    magnitude = magnitude[magnitude > 0]
    if not magnitude.size:
        return 1.0, "neither"
    limit = float(np.percentile(magnitude, percentile))
    return limit, "both" if magnitude.max() > limit else "neither"


def classes_per_row(shown):
    """How many classes share a row of the attribution grid: 5, 2 or 1, the most that fit 12 panels."""
    return next((groups for groups in (5, 2) if 2 * shown * groups <= 12), 1)


def plot_attribution_grid(images, attributions, labels, title, per_class=None):
    """Each test digit beside its attribution, a group per class 0-9, all on one colour scale centred at zero.

    per_class: digits drawn per class (None: as many as the most frequent class has), at most
    MAX_SHOWN_PER_CLASS. A class without digits keeps its place and says so, in the panel and the title.
    """
    import matplotlib.pyplot as plt

    classes = sorted(set(range(10)) | set(labels.unique().tolist()))
    index = {c: torch.nonzero(labels == c).flatten() for c in classes}
    shown = min(per_class or max(len(i) for i in index.values()), MAX_SHOWN_PER_CLASS)
    limit, extend = robust_limit(attributions[torch.cat([i[:shown] for i in index.values()])])
    groups = classes_per_row(shown)
    rows = math.ceil(len(classes) / groups)
    size = (groups * 2 * shown * PANEL_INCHES * 1.1 + 0.4 * (groups - 1) + 2.1, rows * (PANEL_INCHES + 0.45) + 1.5)
    fig = plt.figure(figsize=size)  # no constrained layout: it takes seconds for 100 axes
    top, bottom, right = 1 - 1.3 / size[1], 0.15 / size[1], 1 - 1.4 / size[0]
    grid = fig.add_gridspec(
        rows, groups, wspace=0.1, hspace=0.4, left=0.7 / size[0], right=right, top=top, bottom=bottom
    )
    for slot, c in enumerate(classes):
        pairs = grid[slot // groups, slot % groups].subgridspec(1, shown, wspace=0.12)
        axes = [fig.add_subplot(cell) for j in range(shown) for cell in pairs[0, j].subgridspec(1, 2, wspace=0.04)]
        picture = draw_class(axes, images, attributions, index[c][:shown], c, limit)
    height = min(top - bottom, 7 / size[1])  # a long bar on a tall figure is hard to read off
    place = (right + 0.3 / size[0], (top + bottom - height) / 2, 0.18 / size[0], height)
    bar = fig.colorbar(picture, cax=fig.add_axes(place), extend=extend)
    bar.set_label("attribution: red raises the output of the explained digit, blue lowers it", fontsize=11)
    fig.suptitle(wrapped(title + attribution_notes(index, shown, extend), size[0], 12), fontsize=12)
    return fig


def draw_class(axes, images, attributions, index, digit, limit):
    """Pairs of panels (input, attribution) for the digits `index` of class `digit`; returns the attribution scale."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    for k, ax in enumerate(axes):
        ax.set(xticks=[], yticks=[], frame_on=k < 2 * len(index))
        ax.spines[:].set_color("0.7")
    axes[0].set_ylabel(
        f"digit {digit}" + (f"\n(only {len(index)})" if 0 < len(index) < len(axes) // 2 else ""), fontsize=11
    )
    if not len(index):
        axes[0].text(0, 0.5, f"no test digit\nof class {digit}", fontsize=10, va="center", transform=axes[0].transAxes)
    for j, i in enumerate(index.tolist()):
        attribution = attributions[i, 0].numpy()
        axes[2 * j].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2 * j + 1].imshow(attribution, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[2 * j + 1].set_title(f"sum {attribution.sum():.1f}", fontsize=10)
    for ax in axes[max(1, 2 * len(index)) :]:
        ax.set_axis_off()
    return ScalarMappable(Normalize(-limit, limit), plt.get_cmap("RdBu_r"))


def attribution_notes(index, shown, extend):
    """The lines below the attribution grid's title: how to read it, and what it leaves out."""
    scale = "one colour scale for all digits"
    if extend != "neither":
        scale += ", ending at the 99.5th percentile of |attribution| (pointed ends: beyond)"
    most = max(len(i) for i in index.values())
    if most > shown:
        scale += f"; the first {shown} of up to {most} digits per class are shown"
    lines = [
        "each pair: a test digit and its attribution for that digit, titled with the sum of the attribution",
        scale,
    ]
    missing = [str(c) for c, i in index.items() if not len(i)]
    if missing:
        lines.append(f"no digit of class {', '.join(missing)} was explained")
    return "\n" + "\n".join(lines)


def plot_mean_attributions(attributions, labels, title):
    """The mean attribution of each class present, up to five per row, on one colour scale centred at zero."""
    import matplotlib.pyplot as plt

    classes = labels.unique().tolist()
    columns, rows = min(len(classes), 5), math.ceil(len(classes) / 5)
    means = torch.stack([attributions[labels == c].mean(0)[0] for c in classes])  # (C, 28, 28)
    limit = float(means.abs().max()) or 1.0
    size = (max(2.6 * columns + 1.6, 7.0), 2.9 * rows + 0.8)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.1)  # room between the figure's title and the first panel's
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, c, mean in zip(axes.flat, classes, means):
        shown = ax.imshow(mean.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        count = int((labels == c).sum())
        ax.set_title(f"digit {c} ({count} image{'' if count == 1 else 's'})", fontsize=11)
    bar = fig.colorbar(shown, ax=list(axes.flat), fraction=0.3 / size[0], pad=0.03, shrink=min(1.0, 0.5 + 0.25 * rows))
    bar.set_label("mean attribution\n(red raises the digit's output,\nblue lowers it)", fontsize=10)
    missing = sorted(set(range(10)) - set(classes))
    note = f"\nno digit of class {', '.join(map(str, missing))} was explained" if missing and len(classes) > 1 else ""
    fig.suptitle(wrapped(title + note, size[0], 12), fontsize=12)
    return fig


def plot_maps(images, attributions, labels, digits, title, count=8):
    """The first `count` inputs (top row) and their signed attributions (bottom row), one colour scale."""
    import matplotlib.pyplot as plt

    count = min(count, len(images))
    norm = symmetric_norm(attributions[:count])
    fig, axes = plt.subplots(2, count, figsize=(1.9 * count + 1.2, 4.6), squeeze=False, layout="constrained")
    for i in range(count):
        axes[0, i].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"digit {labels[i]}", fontsize=10)
        shown = axes[1, i].imshow(attributions[i, 0].numpy(), cmap="RdBu_r", norm=norm)
        axes[1, i].set_title(f"for {digits[i]}, sum {attributions[i].sum():.1f}", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=11)
    axes[1, 0].set_ylabel("attribution", fontsize=11)
    fig.colorbar(shown, ax=list(axes[1]), fraction=0.03, pad=0.02, label="attribution")
    note = "\nred raises the output of the explained digit, blue lowers it" + (
        "; one colour scale" if count > 1 else ""
    )
    note += f"; the first {count} of {len(images)} digits" if count < len(images) else ""
    fig.suptitle(wrapped(title + note, 1.9 * count + 1.2, 12), fontsize=12)
    return fig


def percent_axis(axis):
    """Write the ticks of an axis of fractions as percentages: 0.01 becomes "1 %"."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:.6g} %"))


def plot_completeness(steps, relative_gaps, title):
    """Median relative completeness gap against the number of steps, one line per rule (log-log)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rule, gaps in relative_gaps.items():
        ax.loglog(steps, gaps, marker="o", label=rule)
    ax.loglog(steps, [1 / m for m in steps], "k:", label="1/m (for reference)")
    ax.set_xticks(steps, [str(m) for m in steps])
    ax.minorticks_off()
    percent_axis(ax.yaxis)
    ax.set_xlabel("steps m")
    ax.set_ylabel("median relative completeness gap (%):\n|sum of attributions − (F(x) − F(x'))| / |F(x) − F(x')|")
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
        ax.set_xticks(steps, [str(m) for m in steps], fontsize=9)
        ax.minorticks_off()
        percent_axis(ax.yaxis)
        ax.set_xlabel("steps m")
        ax.set_title(f"{rule} rule", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("relative error in % (line: median,\nband: range over the digits)")
    axes[0][0].legend(fontsize=9)
    pieces = ", ".join(map(str, pieces.tolist()))
    fig.suptitle(
        f"{title}\ntrue error = ||IG - IG_exact|| / ||IG_exact||, completeness gap = |sum of IG - (F(x) - F(x'))| "
        f"/ |F(x) - F(x')|; exact IG from {pieces} linear pieces per path"
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
    percent_axis(ax.xaxis)
    ax.set_xlabel("pixels removed, % of the 784 (set to black, highest-ranked first)")
    ax.set_ylabel("probability of the explained digit\n(mean over the digits)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="pixel order (lower is more faithful)")
    return fig
