"""src/iml/integrated_plots.py: every figure of the IG commands has its title, and signed maps a colour scale
centred at zero (the exercise's own figures: tests/test_mnist_integrated.py)."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from iml.integrated_plots import (  # noqa: E402
    plot_completeness,
    plot_deletion,
    plot_exact_errors,
    plot_maps,
    plot_randomization,
    plot_randomization_maps,
    stage_label,
    symmetric_norm,
)

STAGES = ["trained", "classifier.3", "classifier.1", "features.6", "features.3", "features.0"]


def signed_maps(fig):
    """The images drawn with the diverging colour map."""
    return [image for ax in fig.axes for image in ax.get_images() if image.get_cmap().name == "RdBu_r"]


def assert_titled(fig, title):
    assert isinstance(fig, Figure)
    assert title in fig.get_suptitle() or any(title in ax.get_title() for ax in fig.axes), title


def assert_centerd_at_zero(image):
    norm = image.norm
    assert norm.vmax > 0 and norm.vmin == -norm.vmax, (norm.vmin, norm.vmax)


def random_maps(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.usefixtures("close_figures")
def test_plot_maps_draws_inputs_and_attributions_on_one_scale_centered_at_zero():
    labels = torch.tensor([3, 3, 7, 1, 3])
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    attributions = random_maps(5, 1, 28, 28)
    fig = plot_maps(images, attributions, labels, labels, "IG of five digits", count=4)
    assert_titled(fig, "IG of five digits")
    assert "the first 4 of 5 digits" in " ".join(fig.get_suptitle().split())  # what the figure leaves out, said
    shown = signed_maps(fig)
    assert len(shown) == 4  # the first four digits
    for image in shown:
        assert_centerd_at_zero(image)
        assert image.norm.vmax == pytest.approx(float(attributions[:4].abs().max()))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["digit 3", "digit 3"]


@pytest.mark.usefixtures("close_figures")
def test_plot_randomization_maps_scales_each_map_to_minus_one_one():
    maps = random_maps(len(STAGES), 2, 1, 28, 28)
    maps[0, 1] = 0  # an all-zero map is drawn, not an error
    fig = plot_randomization_maps(STAGES, maps, torch.rand(2, 1, 28, 28), "IG maps as the layers are re-initialised")
    assert_titled(fig, "IG maps as the layers are re-initialised")
    shown = signed_maps(fig)
    assert len(shown) == 2 * len(STAGES)
    for image in shown:
        assert_centerd_at_zero(image)
        assert image.norm.vmax == 1
    assert [ax.get_title() for ax in fig.axes[: len(STAGES) + 1]] == ["input"] + [stage_label(s) for s in STAGES]


@pytest.mark.usefixtures("close_figures")
def test_plot_completeness_draws_one_line_per_rule_and_the_reference():
    steps = (2, 4, 8)
    fig = plot_completeness(steps, {"right": [0.5, 0.25, 0.125], "midpoint": [0.1, 0.02, 0.005]}, "Completeness gap")
    assert_titled(fig, "Completeness gap")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["right", "midpoint", "1/m (for reference)"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert_percent_axis(ax.yaxis)  # the README quotes these gaps in percent
    assert "%" in ax.get_ylabel()


def assert_percent_axis(axis):
    """The axis holds fractions and writes its ticks as percentages."""
    formatter = axis.get_major_formatter()
    assert [formatter(value, 0) for value in (0.0001, 0.01, 0.25, 1.0)] == ["0.01 %", "1 %", "25 %", "100 %"]


@pytest.mark.usefixtures("close_figures")
def test_plot_exact_errors_draws_a_panel_per_rule_in_percent():
    steps = (2, 4, 8)
    errors = torch.tensor([[0.5, 0.4], [0.2, 0.1], [0.05, 0.02]], dtype=torch.float64)
    table = {"right": (errors, errors / 2), "midpoint": (errors / 3, errors / 4)}
    fig = plot_exact_errors(steps, table, torch.tensor([12, 15]), "True error of IG")
    assert_titled(fig, "True error of IG")
    assert "12, 15 linear pieces" in fig.get_suptitle()
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in axes] == ["right rule", "midpoint rule"]
    for ax in axes:
        assert_percent_axis(ax.yaxis)
    assert "%" in axes[0].get_ylabel()
    true_error = axes[0].get_lines()[0]
    torch.testing.assert_close(torch.as_tensor(true_error.get_ydata()), errors.median(1).values)


@pytest.mark.usefixtures("close_figures")
def test_plot_randomization_draws_each_image_and_the_mean_without_nan():
    correlations = torch.rand(len(STAGES), 3, generator=torch.Generator().manual_seed(0)).double()
    correlations[:, 2] = float("nan")  # an image without a rank order
    fig = plot_randomization(STAGES, correlations, "Model-parameter randomisation test")
    assert_titled(fig, "Model-parameter randomisation test")
    (ax,) = fig.axes
    mean = next(line for line in ax.get_lines() if line.get_label() == "mean over the images")
    torch.testing.assert_close(torch.as_tensor(mean.get_ydata()), correlations[:, :2].mean(1))
    assert [t.get_text() for t in ax.get_xticklabels()] == [stage_label(s) for s in STAGES]


@pytest.mark.usefixtures("close_figures")
def test_plot_deletion_labels_each_order_with_its_area():
    fractions = torch.linspace(0, 0.2, 3)
    curves = {"Integrated Gradients": torch.tensor([[1.0, 0.5, 0.0]]), "random": torch.ones(1, 3)}
    fig = plot_deletion(fractions, curves, "Pixel deletion")
    assert_titled(fig, "Pixel deletion")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == [
        "Integrated Gradients (mean probability 0.500)",
        "random (mean probability 1.000)",
    ]
    assert_percent_axis(ax.xaxis)
    assert ax.get_xlabel().startswith("pixels removed, %")


def test_symmetric_norm_covers_the_values_and_survives_all_zeros():
    norm = symmetric_norm(torch.tensor([-0.5, 2.0]))
    assert (norm.vmin, norm.vcenter, norm.vmax) == (-2.0, 0.0, 2.0)
    zeros = symmetric_norm(torch.zeros(3))
    assert (zeros.vmin, zeros.vmax) == (-1.0, 1.0)


def test_stage_label_names_the_layers():
    assert [stage_label(s) for s in STAGES] == [
        "trained",
        "+ logits random",
        "+ fc 256 random",
        "+ conv3 random",
        "+ conv2 random",
        "+ conv1 random",
    ]
