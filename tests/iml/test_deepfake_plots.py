"""src/iml/deepfake_plots.py: the figures and tables of Task 3, drawn from small made-up maps.

Every figure has a title; signed maps (differences, weights) use a colour scale symmetric about
zero, so that white means 0.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import raises_explained
from PIL import Image

from iml import deepfake_plots
from iml.deepfake_plots import (
    display_map,
    format_confusion,
    format_study,
    format_table,
    plot_example,
    plot_examples,
    plot_mean_maps,
    plot_radial_profile,
    plot_resampling_study,
    plot_ring_means,
    plot_weights,
    radial_profile,
    show_map,
    weights_figure,
)
from iml.standin import make_standin

pytestmark = pytest.mark.usefixtures("close_figures")


@pytest.fixture
def saved(monkeypatch):
    """The figures the plot functions save, in order (they are closed after saving, but still readable)."""
    figures = []
    save = deepfake_plots.save_figure

    def recording(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(deepfake_plots, "save_figure", recording)
    return figures


def made_up_maps(channels=3, size=16, seed=0):
    """(means (2, C, H, W) of real and fake, difference (C, H, W), std (C, H, W)) as float tensors."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.rand(2, channels, size, size, generator=generator) * 4 + 1
    std = torch.rand(channels, size, size, generator=generator) + 0.5
    return means, means[1] - means[0], std


def map_axes_of(fig):
    """The axes that show a map, in order; colour bars and line plots have no image."""
    return [ax for ax in fig.axes if ax.images]


def assert_symmetric(ax):
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == -vmax and vmax > 0, (vmin, vmax)
    assert ax.images[0].get_cmap().name == "RdBu_r"


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_radial_profile_of_a_known_spectrum():
    fy, fx = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij")
    freq, profile = radial_profile(np.hypot(fy, fx))
    assert freq[0] == 0 and freq[1] == pytest.approx(1 / 32)
    np.testing.assert_allclose(profile, freq, atol=0.5 / 32)  # each ring's mean radius is its own


def test_fft_maps_are_shown_with_frequency_zero_in_the_center_and_others_as_they_are():
    values = np.zeros((8, 6))
    values[0, 0] = 1
    assert display_map(values, "fft")[4, 3] == 1
    assert display_map(values, "dct")[0, 0] == 1 and display_map(values, "pixel")[0, 0] == 1


def test_a_signed_map_gets_a_scale_symmetric_about_zero_and_an_unsigned_one_its_own_range():
    fig, (signed_ax, plain_ax) = plt.subplots(1, 2)
    values = np.linspace(-1, 3, 64).reshape(8, 8)  # lopsided: the scale must still be centred at zero
    show_map(fig, signed_ax, values, "pixel", "signed", True)
    assert_symmetric(signed_ax)
    assert signed_ax.images[0].get_clim()[1] == pytest.approx(np.percentile(np.abs(values), 99.5))
    assert signed_ax.get_title() == "signed"
    show_map(fig, plain_ax, values, "pixel", "unsigned", False, vmin=-1, vmax=3)
    assert plain_ax.images[0].get_clim() == (-1, 3)
    show_map(fig, plain_ax, values, "pixel", "unsigned, robust", False)
    assert plain_ax.images[-1].get_clim() == pytest.approx(tuple(np.percentile(values, (0.5, 99.5))))
    zero = np.zeros((4, 4))  # an all-zero signed map still gets a valid, symmetric scale
    show_map(fig, plain_ax, zero, "fft", "zero", True)
    assert plain_ax.images[-1].get_clim() == (-1.0, 1.0)


@pytest.mark.parametrize("representation", ["fft", "dct", "pixel"])
def test_mean_maps_share_one_scale_and_show_the_difference_symmetric_about_zero(tmp_path, saved, representation):
    means, difference, _ = made_up_maps()
    path = plot_mean_maps(means, difference, representation, "64 validation images", tmp_path / "mean.png")
    assert path == tmp_path / "mean.png" and png_size(path)[0] > 500
    (fig,) = saved
    title = fig._suptitle.get_text()
    assert "64 validation images" in title and title.startswith(deepfake_plots.REPRESENTATION_NAMES[representation])
    real, fake, gap = map_axes_of(fig)
    assert real.get_title().startswith("real") and fake.get_title().startswith("fake")
    assert real.images[0].get_clim() == fake.images[0].get_clim()
    low, high = real.images[0].get_clim()  # robust percentiles of both maps, so one peak cannot take the scale
    assert (low, high) == pytest.approx(tuple(np.percentile(means.mean(dim=1).numpy(), (0.5, 99.5))))
    assert_symmetric(gap)
    assert gap.get_title() == "difference: fake − real"
    assert_covers_the_99th_percentile(gap, difference.mean(dim=0).numpy())
    if representation != "pixel":
        assert_frequencies_increase_upwards(real, representation)


def assert_covers_the_99th_percentile(ax, values):
    assert ax.images[0].get_clim()[1] >= np.percentile(np.abs(values), 99)


def assert_frequencies_increase_upwards(ax, representation):
    """Zero or negative frequencies at the bottom left, the highest at the top right, as on a plot of a function."""
    bottom, top = ax.get_ylim()
    left, right = ax.get_xlim()
    assert bottom < top and left < right
    assert ax.images[0].origin == "lower"
    lowest, pixel = (-0.5 if representation == "fft" else 0.0), 1 / len(ax.images[0].get_array())
    assert bottom == pytest.approx(lowest, abs=pixel) and left == pytest.approx(lowest, abs=pixel)
    assert top == pytest.approx(0.5, abs=pixel)


@pytest.mark.parametrize("representation", ["fft", "dct"])
def test_the_spectrum_row_of_frequency_zero_is_drawn_at_frequency_zero(representation):
    fig, ax = plt.subplots()
    values = np.zeros((16, 16))
    values[0, :] = 1  # the row of vertical frequency 0, unshifted
    show_map(fig, ax, values, representation, "one row", False, 0, 1)
    (image,) = ax.images
    drawn = np.asarray(image.get_array())
    row = int(np.flatnonzero(drawn.any(axis=1))[0])  # with origin "lower", row r is drawn at extent's bottom + r
    bottom, top = image.get_extent()[2:]
    assert bottom + (row + 0.5) * (top - bottom) / 16 == pytest.approx(0.0, abs=1e-9)


def test_a_clipped_map_says_what_its_scale_leaves_out():
    fig, ax = plt.subplots()
    values = np.random.default_rng(1).normal(6, 0.5, (32, 32))
    values[0, 0] = 14.0  # the zero-frequency peak
    show_map(fig, ax, values, "fft", "mean", False, label="mean ln(|FFT2| + eps)")
    bar = ax.images[0].colorbar
    assert bar.extend in ("max", "both") and ax.images[0].get_clim()[1] < 10
    assert "values reach" in bar.ax.get_ylabel() and "14" in bar.ax.get_ylabel()


def test_radial_profile_figure_has_a_title_and_real_fake_and_their_gap(tmp_path, saved):
    means, _, _ = made_up_maps()
    path = plot_radial_profile(means, means[1] - means[0], "64 validation images", tmp_path / "radial.png")
    assert png_size(path)[0] > 500
    (fig,) = saved
    top, bottom = fig.axes
    assert "64 validation images" in top.get_title()
    real, fake = top.lines[:2]
    # the gap is the profile of the difference handed in, which equals the gap of the profiles
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), fake.get_ydata() - real.get_ydata(), rtol=1e-5)


@pytest.mark.parametrize("representation", ["fft", "pixel"])
def test_the_weights_figure_shows_what_decides_beside_the_standardized_data(tmp_path, saved, representation):
    means, difference, std = made_up_maps()
    weights = torch.randn(2, *difference.shape, generator=torch.Generator().manual_seed(3))
    path = plot_weights(weights, difference, std, representation, "trained on 128 images", 0.875, tmp_path / "w.png")
    assert png_size(path)[0] > 500
    (fig,) = saved
    title = fig._suptitle.get_text()
    assert "test accuracy 87.50%" in title and "trained on 128 images" in title
    decision, data = map_axes_of(fig)  # only fake − real decides: the two logits' own maps are not drawn
    for ax in (decision, data):
        assert_symmetric(ax)
    assert "fake − real weights" in decision.get_title() and "std" in data.get_title()
    np.testing.assert_allclose(
        decision.images[0].get_array(),
        display_map((weights[1] - weights[0]).mean(dim=0).numpy(), representation),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        data.images[0].get_array(), display_map((difference / std).mean(dim=0).numpy(), representation), rtol=1e-6
    )
    # FFT maps get the radial profiles below, each on one axis of its own (no twin axes)
    line_axes = [ax for ax in fig.axes if ax.lines and not ax.images]
    assert len(line_axes) == (2 if representation == "fft" else 0)
    for ax in line_axes:
        assert ax.get_xlabel().startswith("radial frequency") and ax.get_ylabel()


@pytest.mark.usefixtures("close_figures")
def test_the_scripts_weights_figure_is_the_decision_map_and_its_ring_means_on_one_axis():
    decision = np.random.default_rng(4).normal(0, 1, (16, 16))
    fig = weights_figure(decision, "fft", "One nn.Linear")
    (ax_map,) = map_axes_of(fig)
    assert_symmetric(ax_map)
    assert_frequencies_increase_upwards(ax_map, "fft")
    (profile,) = [ax for ax in fig.axes if ax.lines and not ax.images]
    mean, magnitude = profile.lines[:2]
    freq, expected = radial_profile(decision)
    np.testing.assert_allclose(mean.get_ydata(), expected)
    np.testing.assert_allclose(magnitude.get_ydata(), radial_profile(np.abs(decision))[1])
    assert profile.get_ylabel() == "fake − real weight" and len(fig.axes) == 3  # map, its colour bar, profile


def test_ring_means_are_drawn_with_their_magnitude_on_one_labelled_axis():
    fig, ax = plt.subplots()
    plot_ring_means(ax, np.random.default_rng(4).normal(0.2, 1, (16, 16)), "fake − real weight")
    assert fig.axes == [ax] and ax.get_ylabel() == "fake − real weight"
    assert ax.get_title() and len(ax.get_legend().get_texts()) == 2


def test_example_figure_shows_the_whole_image_and_an_enlarged_detail():
    image = np.random.default_rng(5).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    fig = plot_example(image, y0=40, x0=60, zoom=16)
    whole, detail = fig.axes
    assert whole.get_title() == "whole image, 128x128 pixels"
    assert detail.get_title() == "detail in the yellow box (16x16 pixels)"
    np.testing.assert_array_equal(whole.images[0].get_array(), image)
    np.testing.assert_array_equal(detail.images[0].get_array(), image[40:56, 60:76])


def test_examples_of_stand_in_data_are_written_and_titled_as_stand_in(tmp_path, saved):
    out = make_standin(tmp_path / "standin", per_class=2, seed=0, workers=1)
    paths = plot_examples(out, tmp_path / "figures", index=1)
    assert [p.name for p in paths] == ["real.png", "fake.png"]
    with Image.open(paths[0]) as figure:
        assert figure.format == "PNG" and figure.size[0] > 600
    titles = [fig._suptitle.get_text() for fig in saved]
    assert titles[0].startswith("STAND-IN DATA") and titles[0].endswith("A_ffhq/00001.png")
    assert titles[1].startswith("STAND-IN DATA") and titles[1].endswith("B_stylegan/style_gan_ffhq_example1.png")
    with raises_explained(r"^--index 2 is too large: .*A_ffhq holds 2 images\.$"):
        plot_examples(out, tmp_path / "figures", index=2)


def test_confusion_matrix_and_table_are_laid_out_by_class_and_representation():
    confusion = torch.tensor([[28, 2], [12345, 18]])
    lines = format_confusion(confusion).splitlines()
    assert lines[0].split() == ["real", "fake"]
    assert lines[1].split() == ["true", "real", "28", "2"]
    assert lines[2].split() == ["true", "fake", "12345", "18"]
    results = [
        {"representation": "fft", "val_accuracy": 0.9, "test_accuracy": 0.875, "seconds": 12.34},
        {"representation": "pixel", "val_accuracy": 0.5, "test_accuracy": 0.55, "seconds": 3.0},
    ]
    table = format_table(results).splitlines()
    assert table[0].split() == ["representation", "validation", "test", "seconds"]
    assert table[1].split() == ["fft", "(log", "|FFT2|)", "90.00%", "87.50%", "12.3"]
    assert table[2].split() == ["pixel", "(pixels)", "50.00%", "55.00%", "3.0"]


def study_rows(strengths=(0.0, 0.5, 2.0)):
    """Made-up rows of the resampling study: one difference (3, 16, 16) per filter pair, of growing strength."""
    generator = torch.Generator().manual_seed(6)
    filters = [("lanczos", "lanczos"), ("lanczos", "nearest"), ("nearest", "lanczos")]
    return [
        {
            "real": real,
            "fake": fake,
            "train_per_class": 150,
            "test_per_class": 30,
            "train_accuracy": 0.5 + i * 0.2,
            "test_accuracy": [0.55, 1.0, 0.95][i],
            "test_interval": [(0.4236, 0.6700), (0.9398, 1.0), (0.8629, 0.9829)][i],
            "difference": strength * torch.randn(3, 16, 16, generator=generator, dtype=torch.float64),
        }
        for i, ((real, fake), strength) in enumerate(zip(filters, strengths))
    ]


def test_the_study_table_has_one_line_per_filter_pair_with_its_interval():
    lines = format_study(study_rows()).splitlines()
    assert len(lines) == 4
    header = "reals by fakes by train/class test/class training test 95 % interval"
    assert lines[0].split() == header.split()
    assert lines[1].split() == ["lanczos", "lanczos", "150", "30", "50.0%", "55.0%", "42.4%-67.0%"]
    assert lines[2].split() == ["lanczos", "nearest", "150", "30", "70.0%", "100.0%", "94.0%-100.0%"]
    assert lines[3].split() == ["nearest", "lanczos", "150", "30", "90.0%", "95.0%", "86.3%-98.3%"]
    # the columns line up: every accuracy ends where its header does
    assert {line.rindex("%  ") + 1 for line in lines[1:]} == {lines[0].index("test  95") + len("test")}


def test_the_study_figure_shows_every_difference_on_one_symmetric_scale(tmp_path, saved):
    rows = study_rows()
    path = plot_resampling_study(rows, "200 pictures per class", tmp_path / "study.png")
    assert path == tmp_path / "study.png"
    width, height = png_size(path)
    assert width > 2 * height
    (fig,) = saved
    assert "200 pictures per class" in fig._suptitle.get_text()
    maps = map_axes_of(fig)
    assert len(maps) == 3
    for ax, row in zip(maps, rows):
        assert_symmetric(ax)
        assert ax.images[0].get_clim() == maps[0].images[0].get_clim()  # one scale for all
        low, high = row["test_interval"]
        assert ax.get_title() == (
            f"reals: {row['real']}, fakes: {row['fake']}\n"
            f"test accuracy {row['test_accuracy']:.0%} (95 %: {low:.0%}-{high:.0%})"
        )
        # the RGB mean, frequency zero in the centre
        np.testing.assert_allclose(ax.images[0].get_array(), np.fft.fftshift(row["difference"].mean(dim=0).numpy()))
    # the scale is set by the strongest map, so the weakest (all zero) stays white
    limit = maps[0].images[0].get_clim()[1]
    strongest = np.abs(rows[2]["difference"].mean(dim=0).numpy())
    assert limit == pytest.approx(np.percentile(strongest, 99.5))


def test_a_study_of_one_pair_with_no_difference_still_gets_a_figure(tmp_path, saved):
    path = plot_resampling_study(study_rows()[:1], "nothing differs", tmp_path / "one.png")
    assert png_size(path)[0] > 300
    (fig,) = saved
    (ax,) = map_axes_of(fig)
    assert ax.images[0].get_clim() == (-1.0, 1.0)
