"""Figures of the IG commands (`python -m iml ig`, `ig-checks`, `ig-exact`): attribution maps,
completeness against m, exact IG's true error, the randomization test and pixel deletion. Signed
maps use a diverging colour map centred at zero. The exercise's own figures (the attributions per
class and their means) are drawn in src/mnist_integrated.py.
"""

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


def plot_maps(images, attributions, labels, digits, title, count=8):
    """The first `count` inputs (top row) and their signed attributions (bottom row), one colour scale."""
    import matplotlib.pyplot as plt

    count = min(count, len(images))
    norm = symmetric_norm(attributions[:count])
    fig, axes = plt.subplots(2, count, figsize=(1.9 * count + 1.2, 4.6), squeeze=False, layout="constrained")
    for i in range(count):
        axes[0, i].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"digit {labels[i]}", fontsize=9)
        shown = axes[1, i].imshow(attributions[i, 0].numpy(), cmap="RdBu_r", norm=norm)
        axes[1, i].set_title(f"for {digits[i]}, sum {attributions[i].sum():.1f}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("attribution")
    fig.colorbar(shown, ax=list(axes[1]), fraction=0.03, pad=0.02, label="attribution")
    fig.suptitle(title + "\nred raises the output of the explained digit, blue lowers it")
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
