"""Figures and tables of Task 3: mean maps of real and fake images and their difference, the radial
profile of the spectra, the linear detector's weights beside the data's difference, and
real.png and fake.png; the confusion matrix and the table of representations. Signed maps use a diverging colour map centred at zero.
"""

from pathlib import Path

import numpy as np

from iml.common import InputError, relative
from iml.ffhq_import import read_manifest
from iml.outputs import save_figure
from iml.spectra import REPRESENTATION_NAMES
from util import FAKE_FOLDER, REAL_FOLDER, is_standin, list_images, read_rgb

CLIPPED = "colour scales end at robust percentiles; a pointed colour-bar end marks values beyond them"


def describe_data(data_dir, split_name, count):
    """The data named in every title and log line; stand-in data always says so, imported data names its filters."""
    split = {"val": "validation", "test": "test", "train": "training"}[split_name]
    if is_standin(data_dir):
        return f"{count:,} {split} images of the SYNTHETIC STAND-IN (not FFHQ/StyleGAN)"
    filters = {row.get("class"): row.get("filter") for row in read_manifest(data_dir)}
    if filters:
        return f"{count:,} {split} images, imported (reals by {filters.get('real')}, fakes by {filters.get('fake')})"
    return f"{count:,} {split} images, FFHQ vs StyleGAN"


def radial_profile(spectrum):
    """Mean of an unshifted spectrum (H, W) over rings of equal frequency |f| (cycles per pixel).

    Returns (frequencies, means), one entry per ring of width 1/H; rings beyond 0.5 reach only
    into the corners of the spectrum.
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    h, w = spectrum.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    ring = np.rint(np.hypot(fy, fx) * h).astype(int).ravel()
    sums = np.bincount(ring, weights=spectrum.ravel())
    counts = np.bincount(ring)
    keep = counts > 0
    return np.arange(len(sums))[keep] / h, sums[keep] / counts[keep]


def display_map(values, representation):
    """A (H, W) map as shown: FFT maps shifted so frequency zero is central."""
    values = np.asarray(values)
    return np.fft.fftshift(values) if representation == "fft" else values


def map_axes(ax, representation, shape):
    """(extent, origin) of a map of `representation`, with its axis labels.

    Frequencies increase to the right and upwards, negative ones at the left and bottom; pixel maps
    keep the image's row 0 at the top.
    """
    h, w = shape
    if representation == "pixel":
        ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
        return (-0.5, w - 0.5, h - 0.5, -0.5), "upper"
    ax.set(xlabel="horizontal frequency (cycles/pixel)", ylabel="vertical frequency (cycles/pixel)")
    if representation == "fft":
        fy, fx = (np.fft.fftshift(np.fft.fftfreq(n)) for n in (h, w))  # the centres of the shifted rows, columns
        return (fx[0] - 0.5 / w, fx[-1] + 0.5 / w, fy[0] - 0.5 / h, fy[-1] + 0.5 / h), "lower"
    return (-0.25 / w, (w - 0.5) / (2 * w), -0.25 / h, (h - 0.5) / (2 * h)), "lower"  # DCT-II: k / (2n)


def robust_range(*maps):
    """The 0.5th and 99.5th percentiles over all `maps`: one extreme coefficient (the zero frequency, about
    14 where the rest of a log spectrum lies between 5 and 8) must not take the whole colour scale."""
    low, high = np.percentile(np.concatenate([np.ravel(m) for m in maps]), (0.5, 99.5))
    return float(low), float(high)


def extend_of(values, low, high):
    """The colour bar's `extend`: pointed ends on the sides where `values` reach beyond [low, high]."""
    below, above = float(np.min(values)) < low, float(np.max(values)) > high
    return "both" if below and above else "min" if below else "max" if above else "neither"


def show_map(fig, ax, values, representation, title, signed, vmin=None, vmax=None, label=None):
    """One map with its colour bar; signed maps get a diverging colour map centred at zero.

    A few extreme coefficients (the zero frequency, a single artefact peak) would wash out the rest, so a
    signed map's colour range ends at the 99.5th percentile of |values|, and an unsigned map's (unless
    vmin and vmax are given) at its 0.5th and 99.5th percentiles; the colour bar's pointed ends mark values beyond.
    """
    values = display_map(values, representation)
    cmap = "RdBu_r" if signed else "viridis"
    if signed:
        limit = float(np.percentile(np.abs(values), 99.5)) or float(np.abs(values).max()) or 1.0
        vmin, vmax = -limit, limit
    elif vmin is None or vmax is None:
        vmin, vmax = robust_range(values)
    extent, origin = map_axes(ax, representation, values.shape)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, origin=origin, interpolation="nearest")
    ax.set_title(title, fontsize=11)
    extend = extend_of(values, vmin, vmax)
    if extend != "neither":  # say what the pointed ends hide
        label = f"{label or ''}\n(scale {vmin:.3g} to {vmax:.3g}; values reach {np.min(values):.3g} to {np.max(values):.3g})"
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label, extend=extend)


def quantity(representation):
    """What a mean map of `representation` shows, for titles and colour bars."""
    return {"fft": "mean ln(|FFT2| + eps)", "dct": "mean ln(|DCT| + eps)", "pixel": "mean pixel value"}[representation]


def mean_maps_figure(real, fake, difference, representation, title):
    """The mean maps (H, W) of the real and of the fake images on one colour scale, and fake − real."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.8), layout="constrained")
    low, high = robust_range(real, fake)
    what = quantity(representation)
    for ax, values, name in zip(axes, (real, fake), ("real", "fake")):
        show_map(fig, ax, values, representation, f"{name} images: {what}", False, low, high, label=what)
    show_map(fig, axes[2], difference, representation, "difference: fake − real", True, label=f"fake − real, {what}")
    fig.suptitle(f"{title}\n{CLIPPED}", fontsize=12)
    return fig


def plot_mean_maps(means, difference, representation, data_label, path):
    """Mean representation of real and of fake images and fake minus real, each averaged over channels.

    means: (2, C, H, W) of the real and the fake images; difference: (C, H, W), fake - real.
    """
    real, fake = means.mean(dim=1).cpu().numpy()  # (H, W) each
    where = " (shifted: frequency zero in the centre)" if representation == "fft" else ""
    title = f"{REPRESENTATION_NAMES[representation]} averaged over RGB and over {data_label}{where}"
    fig = mean_maps_figure(real, fake, difference.mean(dim=0).cpu().numpy(), representation, title)
    return save_figure(fig, path)


def plot_radial_profile(means, difference, data_label, path):
    """Mean log magnitude against radial frequency for real and fake images, and their difference.

    means: (2, C, H, W) unshifted log spectra of the real and the fake images; difference:
    (C, H, W), fake - real. Each is averaged over channels and over rings of equal frequency.
    """
    import matplotlib.pyplot as plt

    real, fake = means.mean(dim=1).cpu().numpy()
    freq, real_profile = radial_profile(real)
    _, fake_profile = radial_profile(fake)
    _, difference_profile = radial_profile(difference.mean(dim=0).cpu().numpy())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(2, 1))
    top.plot(freq, real_profile, ".-", ms=3, label="real")
    top.plot(freq, fake_profile, ".-", ms=3, label="fake")
    top.set_ylabel("mean ln(|FFT2| + eps)")
    top.legend()
    bottom.plot(freq, difference_profile, ".-", ms=3, color="black")
    bottom.axhline(0, color="grey", lw=0.8)
    bottom.set_ylabel("fake − real")
    bottom.set_title("difference of the two curves above: fake − real", fontsize=10)
    bottom.set_xlabel("radial frequency |f| (cycles/pixel)")
    for ax in (top, bottom):
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    top.text(
        0.505,
        0.5,
        "Nyquist (0.5): beyond it\nonly the corners",
        transform=top.get_xaxis_transform(),
        fontsize=9,
        color="grey",
    )
    top.set_title(f"Spectrum averaged over rings of equal frequency and RGB\n{data_label}", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def weights_figure(decision, representation, title, standardized=None):
    """What decides: the fake − real weights (H, W) as a map and, for FFT maps, averaged over rings of equal
    frequency on one axis; beside them, when given, the data's standardised gap (H, W) the weights act on."""
    import matplotlib.pyplot as plt

    maps = [(decision, "fake − real weights: what decides\n(red pushes towards 'fake')", "fake − real weight")]
    if standardized is not None:
        maps.append(
            (standardized, "data: (fake − real mean) / std\n(what the weights multiply)", "gap in units of std")
        )
    profiles = maps if representation == "fft" else []
    shape = (1 + bool(profiles), 2) if standardized is not None else (1, 1 + bool(profiles))
    size = (8 * shape[1], 5.6 * shape[0] + 0.8)
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, layout="constrained")
    for ax, (values, text, label) in zip(axes.flat, maps):
        show_map(fig, ax, values, representation, text, True, label=label)
    for ax, (values, _, label) in zip(list(axes.flat)[len(maps) :], profiles):
        plot_ring_means(ax, values, label)
    note = "only the fake − real weights decide a two-way softmax"
    fig.suptitle(f"{title}\n{note}; {CLIPPED}", fontsize=12)
    return fig


def plot_weights(weights, difference, std, representation, data_label, test_accuracy, path):
    """The classifier's fake − real weights next to the data's gap between the classes, in units of std.

    weights (2, C, H, W); difference (C, H, W), mean fake - mean real; std (C, H, W), the training
    split's spread that the classifier's inputs were divided by. FFT maps get radial profiles below.
    """
    real_w, fake_w = weights.float().mean(dim=1).cpu().numpy()  # (H, W) each: averaged over RGB
    standardized = (difference / std).mean(dim=0).cpu().numpy()  # the weights act on standardised coefficients
    title = (
        f"One nn.Linear on standardised {REPRESENTATION_NAMES[representation]} (RGB averaged), "
        f"test accuracy {test_accuracy:.2%}\n{data_label}"
    )
    return save_figure(weights_figure(fake_w - real_w, representation, title, standardized), path)


def plot_ring_means(ax, values, label):
    """The ring means of a signed map (H, W) and of its magnitude against radial frequency, on one axis."""
    freq, signed = radial_profile(values)
    _, magnitude = radial_profile(np.abs(values))
    ax.plot(freq, signed, ".-", ms=3, color="tab:red", label="ring mean")
    ax.plot(freq, magnitude, ".-", ms=3, color="tab:orange", label="ring mean of |value|: how large, either sign")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}  # readable where a curve passes behind
    ax.text(
        0.505,
        0.97,
        "Nyquist (0.5): beyond it\nonly the corners",
        transform=ax.get_xaxis_transform(),
        va="top",
        bbox=box,
    )
    ax.set(xlabel="radial frequency |f| (cycles/pixel)", ylabel=label)
    ax.set_title("the same, averaged over rings of equal frequency |f|", fontsize=11)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)


def plot_resampling_study(rows, data_label, path):
    """One mean log-spectrum difference (fake − real) per filter pair, in a row, on one colour scale.

    rows: dicts with "real" and "fake" (filter names), "test_accuracy", "test_interval" and
    "difference" (C, H, W); each map is averaged over RGB and shifted so frequency zero is central.
    The shared scale ends at the largest 99.5th percentile of |difference| over the maps, so
    strong and weak differences can be compared by eye.
    """
    import matplotlib.pyplot as plt

    maps = [display_map(row["difference"].mean(dim=0).numpy(), "fft") for row in rows]  # (H, W) each
    limit = max(float(np.percentile(np.abs(m), 99.5)) for m in maps) or 1.0
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 4.9), squeeze=False)
    for ax, row, values in zip(axes[0], rows, maps):
        extent, origin = map_axes(ax, "fft", values.shape)
        image = ax.imshow(
            values, cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent, origin=origin, interpolation="nearest"
        )
        low, high = row["test_interval"]
        ax.set_title(
            f"reals: {row['real']}, fakes: {row['fake']}\ntest accuracy {row['test_accuracy']:.0%} "
            f"(95 %: {low:.0%}-{high:.0%})",
            fontsize=10,
        )
        ax.label_outer()
    extend = extend_of(np.stack(maps), -limit, limit)
    fig.colorbar(
        image, ax=axes[0].tolist(), fraction=0.02, pad=0.02, extend=extend, label="fake − real, mean ln(|FFT2| + eps)"
    )
    fig.suptitle(
        "Mean log-spectrum difference, fake − real, when both classes are resized to 128 px with different filters "
        f"(frequency zero in the centre)\n{data_label}; one colour scale, ending at the largest 99.5th percentile "
        "of |difference|; pointed ends: beyond",
        fontsize=12,
    )
    return save_figure(fig, path)


def plot_examples(source_dir, out_dir, index=0):
    """real.png and fake.png in `out_dir`: image `index` of each folder, whole and a zoomed detail.

    Returns the two paths. Raises InputError (hint "index") when a folder holds fewer images.
    """
    source_dir = Path(source_dir)
    paths = []
    for folder, kind, file in (("real", REAL_FOLDER, "real.png"), ("fake", FAKE_FOLDER, "fake.png")):
        files = list_images(source_dir / kind)
        if index >= len(files):
            raise InputError(
                f"index {index} is too large: {relative(source_dir / kind)} holds {len(files)} images.", hint="index"
            )
        fig = plot_example(read_rgb(files[index]))
        if is_standin(source_dir):
            what = "a 'real' dead-leaves picture" if folder == "real" else "a 'fake' made by an upsampling generator"
            fig.suptitle(f"STAND-IN DATA (synthetic, not faces): {what}\n{kind}/{files[index].name}")
        else:
            what = "Real face from FFHQ" if folder == "real" else "Fake face made by StyleGAN"
            fig.suptitle(f"{what}\n{kind}/{files[index].name}")
        paths.append(save_figure(fig, Path(out_dir) / file))
    return paths


def plot_example(image, y0=56, x0=56, zoom=16):
    """One image uint8 (H, W, 3), whole with a yellow box, and the box's `zoom` x `zoom` pixels enlarged."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    fig, (ax_full, ax_zoom) = plt.subplots(1, 2, figsize=(8.4, 4.4))
    ax_full.imshow(image, interpolation="nearest")
    ax_full.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), zoom, zoom, fill=False, edgecolor="yellow", linewidth=1.5))
    ax_full.set_title(f"whole image, {image.shape[1]}x{image.shape[0]} pixels")
    ax_zoom.imshow(
        image[y0 : y0 + zoom, x0 : x0 + zoom],
        interpolation="nearest",
        extent=(x0 - 0.5, x0 + zoom - 0.5, y0 + zoom - 0.5, y0 - 0.5),
    )
    ax_zoom.set_title(f"detail in the yellow box ({zoom}x{zoom} pixels)")
    for ax in (ax_full, ax_zoom):
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 8, 10]))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 4, 8, 10]))
    return fig


def format_confusion(confusion, class_names=("real", "fake")):
    """A confusion matrix (2, 2), rows the true class and columns the predicted one, as text."""
    width = max(6, len(str(confusion.max().item())) + 2)
    lines = [" " * 14 + "".join(f"{name:>{width}}" for name in class_names)]
    for name, row in zip(class_names, confusion.tolist()):
        lines.append(f"  true {name:<7}" + "".join(f"{value:>{width}}" for value in row))
    return "\n".join(lines)


def format_table(results):
    """Validation and test accuracy and seconds per representation, one line each, as text."""
    lines = [f"{'representation':<16}{'validation':>12}{'test':>10}{'seconds':>10}"]
    for r in results:
        name = f"{r['representation']} ({REPRESENTATION_NAMES[r['representation']]})"
        lines.append(f"{name:<16}{r['val_accuracy']:>12.2%}{r['test_accuracy']:>10.2%}{r['seconds']:>10.1f}")
    return "\n".join(lines)


def format_study(rows):
    """The resampling study as a table: filters, images per class, training and test accuracy, 95 % interval."""
    lines = [
        f"{'reals by':<10}{'fakes by':<10}{'train/class':>12}{'test/class':>11}{'training':>10}{'test':>8}  95 % interval"
    ]
    for r in rows:
        low, high = r["test_interval"]
        lines.append(
            f"{r['real']:<10}{r['fake']:<10}{r['train_per_class']:>12}{r['test_per_class']:>11}"
            f"{r['train_accuracy']:>10.1%}{r['test_accuracy']:>8.1%}  {low:.1%}-{high:.1%}"
        )
    return "\n".join(lines)
