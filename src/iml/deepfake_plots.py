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
    """Image extent and axis labels for a map of `representation`."""
    h, w = shape
    if representation == "fft":
        extent = (-0.5, 0.5 - 1 / w, 0.5 - 1 / h, -0.5)
        ax.set_xlabel("horizontal frequency (cycles/pixel)")
        ax.set_ylabel("vertical frequency (cycles/pixel)")
    elif representation == "dct":
        extent = (0, (w - 1) / (2 * w), (h - 1) / (2 * h), 0)
        ax.set_xlabel("horizontal frequency (cycles/pixel)")
        ax.set_ylabel("vertical frequency (cycles/pixel)")
    else:
        extent = (0, w, h, 0)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    return extent


def show_map(fig, ax, values, representation, title, signed, vmin=None, vmax=None, label=None):
    """One map with its colour bar; signed maps get a diverging colour map centred at zero.

    A few extreme coefficients (the zero frequency, a single artefact peak) would wash out the rest,
    so a signed map's colour range ends at the 99.5th percentile of |values|; the colour bar's
    pointed ends mark values beyond it.
    """
    values = display_map(values, representation)
    extend = "neither"
    if signed:
        limit = float(np.percentile(np.abs(values), 99.5)) or float(np.abs(values).max()) or 1.0
        vmin, vmax, cmap = -limit, limit, "RdBu_r"
        extend = "both" if np.abs(values).max() > limit else "neither"
    else:
        cmap = "viridis"
    extent = map_axes(ax, representation, values.shape)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label, extend=extend)


def quantity(representation):
    """What a mean map of `representation` shows, for titles and colour bars."""
    return {"fft": "mean ln(|FFT2| + eps)", "dct": "mean ln(|DCT| + eps)", "pixel": "mean pixel value"}[representation]


def plot_mean_maps(means, difference, representation, data_label, path):
    """Mean representation of real and of fake images and fake minus real, each averaged over channels.

    means: (2, C, H, W) of the real and the fake images; difference: (C, H, W), fake - real.
    """
    import matplotlib.pyplot as plt

    real, fake = means.mean(dim=1).cpu().numpy()  # (H, W) each
    low, high = min(real.min(), fake.min()), max(real.max(), fake.max())
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    what = quantity(representation)
    show_map(fig, axes[0], real, representation, f"real: {what}", False, low, high, label=what)
    show_map(fig, axes[1], fake, representation, f"fake: {what}", False, low, high, label=what)
    show_map(
        fig,
        axes[2],
        difference.mean(dim=0).cpu().numpy(),
        representation,
        "difference: fake − real",
        True,
        label="fake − real",
    )
    where = " (shifted: frequency zero in the centre)" if representation == "fft" else ""
    fig.suptitle(f"{REPRESENTATION_NAMES[representation]} averaged over RGB and over {data_label}{where}", fontsize=12)
    fig.tight_layout()
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
    bottom.set_xlabel("radial frequency |f| (cycles/pixel)")
    for ax in (top, bottom):
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    top.text(
        0.505,
        0.5,
        "Nyquist (0.5): beyond it\nonly the corners",
        transform=top.get_xaxis_transform(),
        fontsize=8,
        color="grey",
    )
    top.set_title(f"Spectrum averaged over rings of equal frequency and RGB\n{data_label}", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_weights(weights, difference, std, representation, data_label, test_accuracy, path):
    """The classifier's weights per class and their difference, next to the mean difference of the data.

    weights (2, C, H, W); difference (C, H, W), mean fake - mean real; std (C, H, W), the training
    split's spread that the classifier's inputs were divided by. FFT maps get a radial profile below.
    """
    import matplotlib.pyplot as plt

    real_w, fake_w = weights.float().mean(dim=1).cpu().numpy()  # (H, W) each: averaged over RGB
    radial = representation == "fft"
    fig = plt.figure(figsize=(21, 9.5 if radial else 5.2))
    grid = fig.add_gridspec(2 if radial else 1, 4, height_ratios=(1.25, 1) if radial else None)
    panels = [
        (real_w, "weights of the 'real' logit", "weight"),
        (fake_w, "weights of the 'fake' logit", "weight"),
        (fake_w - real_w, "fake − real weights: what decides\n(red pushes towards 'fake')", "weight"),
        (difference.mean(dim=0).cpu().numpy(), f"data: {quantity(representation)}\nfake − real", "fake − real"),
    ]
    for column, (values, title, label) in enumerate(panels):
        show_map(fig, fig.add_subplot(grid[0, column]), values, representation, title, True, label=label)
    if radial:
        # the weights act on standardised coefficients, so compare them with the gap in units of std
        standardized = (difference / std).mean(dim=0).cpu().numpy()
        plot_radial_weights(fig.add_subplot(grid[1, :]), fake_w - real_w, standardized)
    fig.suptitle(
        f"One nn.Linear on standardised {REPRESENTATION_NAMES[representation]} (RGB averaged), "
        f"test accuracy {test_accuracy:.2%}\n{data_label}",
        fontsize=12,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def plot_radial_weights(ax, decision, standardized):
    """Ring means of the fake − real weights (H, W) and of the standardised data gap (H, W), on twin axes."""
    freq, decision_profile = radial_profile(decision)
    _, magnitude = radial_profile(np.abs(decision))
    _, data = radial_profile(standardized)
    ax.plot(freq, decision_profile, ".-", ms=3, color="tab:red", label="fake − real weight, ring mean")
    ax.plot(freq, magnitude, ".-", ms=3, color="tab:orange", label="|fake − real weight|, ring mean")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("radial frequency |f| (cycles/pixel)")
    ax.set_ylabel("weight (on standardised input)")
    twin = ax.twinx()
    twin.plot(freq, data, ".-", ms=3, color="tab:blue", label="data: (fake − real mean) / std, ring mean")
    twin.set_ylabel("(fake − real) / std of the coefficient", color="tab:blue")
    # both axes symmetric about zero, so their zero lines coincide
    ax.set_ylim(-1.1 * np.abs(magnitude).max(), 1.1 * np.abs(magnitude).max())
    twin.set_ylim(-1.1 * np.abs(data).max(), 1.1 * np.abs(data).max())
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.text(
        0.505,
        0.05,
        "Nyquist (0.5): beyond it only the corners",
        transform=ax.get_xaxis_transform(),
        fontsize=8,
        color="grey",
    )
    lines = ax.get_lines()[:2] + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title("the same along radial frequency", fontsize=10)


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
        extent = map_axes(ax, "fft", values.shape)
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent, interpolation="nearest")
        low, high = row["test_interval"]
        ax.set_title(
            f"reals: {row['real']}, fakes: {row['fake']}\ntest accuracy {row['test_accuracy']:.0%} "
            f"(95 %: {low:.0%}-{high:.0%})",
            fontsize=10,
        )
        ax.label_outer()
    extend = "both" if max(np.abs(m).max() for m in maps) > limit else "neither"
    fig.colorbar(
        image, ax=axes[0].tolist(), fraction=0.02, pad=0.02, extend=extend, label="fake − real, mean ln(|FFT2| + eps)"
    )
    fig.suptitle(
        "Mean log-spectrum difference, fake − real, when both classes are resized to 128 px with different filters "
        f"(frequency zero in the centre)\n{data_label}",
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
