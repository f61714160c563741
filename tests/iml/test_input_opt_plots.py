"""src/iml/input_opt_plots.py: the figure and tables of `python -m iml input-opt-regularized`, drawn from
small made-up results.

Signed (unbounded) images must use a colour scale symmetric about zero, so that white means 0;
clipped images a grey scale from 0 (black) to 1 (white).
"""

import argparse

import pytest
import torch

from iml import input_opt_plots
from iml.input_opt_plots import (
    classify,
    describe,
    format_table,
    plot_comparison,
    write_comparison,
)
from iml.regularized import FREE_PIXELS, NO_PENALTIES, PROTOTYPE, Parametrization, Penalties, Result

pytestmark = pytest.mark.usefixtures("close_figures")

START_NAMES = ("random", "ones")
NEURONS = (3, 5, 8)


def made_up_result(clip=False, steps=4, seed=0):
    """A Result for 2 starts and 3 digits: pixels in [0, 1] when `clip`, else in about [-2, 3]."""
    generator = torch.Generator().manual_seed(seed)
    S, K = len(START_NAMES), len(NEURONS)
    images = torch.rand(S, K, 1, 28, 28, generator=generator)
    if not clip:
        images = images * 5 - 2
    logit = torch.rand(steps + 1, S, K, generator=generator).cumsum(0) * 10
    probability = torch.linspace(0.1, 1.0, steps + 1)[:, None, None].expand(steps + 1, S, K).clone()
    return Result(
        images=images,
        starts=torch.rand(S, 1, 28, 28, generator=generator),
        neurons=NEURONS,
        objective=logit - 1,
        logit=logit,
        probability=probability,
        confident_step=torch.tensor([[2, -1, 0], [1, 3, -1]]),
        confident_images=images.clamp(0, 1),
        parametrization=Parametrization(clip=clip),
    )


def image_axes(fig):
    """The axes that show an image (one per row of pictures), top to bottom; colour bars have none."""
    return [ax for ax in fig.axes if ax.images]


def assert_symmetric(ax, bound):
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == -vmax, (vmin, vmax)
    assert vmax == pytest.approx(bound)
    assert ax.images[0].get_cmap().name.startswith("RdBu")


def assert_grey_0_to_1(ax):
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert ax.images[0].get_cmap().name.startswith("gray")


def test_describe_names_every_regularizer_or_its_absence():
    assert describe(NO_PENALTIES, FREE_PIXELS) == "no L2, no TV, no jitter, no blur, no clipping"
    assert describe(*PROTOTYPE) == "L2 0.05, TV 0.05, jitter 1 px, no blur, clip to [0, 1]"
    assert describe(Penalties(tv=0.2), Parametrization(blur=0.5)) == (
        "no L2, TV 0.2, no jitter, blur sigma 0.5 px, no clipping"
    )


def test_classify_gives_the_networks_top_class_and_probability_in_the_images_shape(shipped_model):
    images = torch.rand(2, 3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    predicted, confidence = classify(shipped_model, images)
    assert predicted.shape == confidence.shape == (2, 3)
    probabilities = shipped_model(images.view(-1, 1, 28, 28)).softmax(1).detach()
    assert torch.equal(predicted.flatten(), probabilities.argmax(1))
    torch.testing.assert_close(confidence.flatten(), probabilities.max(1).values)


def color_bars(fig):
    return [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_clipped_rows_are_grey_from_0_to_1():
    """Clipped (regularized) optima are drawn in grey from black 0 to white 1, never on a signed scale."""
    fig = plot_comparison(made_up_result(clip=False), made_up_result(clip=True, seed=1), START_NAMES, "t", 0.99)
    for s in range(len(START_NAMES)):
        assert_grey_0_to_1(image_axes(fig)[len(START_NAMES) + s])


@pytest.mark.parametrize("clip", [True, False])
def test_comparison_shows_first_sure_inputs_and_regularized_optima_one_scale_per_kind(clip):
    plain, regular = made_up_result(clip=False), made_up_result(clip=clip, seed=1)
    fig = plot_comparison(plain, regular, START_NAMES, "plain against regularised", confident=0.99)
    assert fig._suptitle.get_text() == "plain against regularised"
    rows = image_axes(fig)
    # the plain optima are input_opt_grid.png's: not repeated here, only the input when first sure
    assert len(rows) == 2 * len(START_NAMES)
    first_sure, regularized = rows[: len(START_NAMES)], rows[len(START_NAMES) :]
    for ax in first_sure:
        assert_grey_0_to_1(ax)
    for ax in regularized:
        if clip:
            assert_grey_0_to_1(ax)
        else:  # one signed scale for every unclipped row
            assert_symmetric(ax, regular.images.abs().max().item())
    bars = color_bars(fig)
    assert len(bars) == (1 if clip else 2)  # one colour bar per kind of map
    assert "0 black, 1 white" in bars[0].ax.get_ylabel()
    if not clip:
        assert "red > 0" in bars[1].ax.get_ylabel()
    assert len({bar.ax.get_ylabel() for bar in bars}) == len(bars)
    # a digit the network never became sure of says so
    assert [label.get_text() for label in rows[0].get_xticklabels()] == ["step 2", "never (final)", "step 0"]
    final = regular.logit[-1, 0, 1], regular.probability[-1, 0, 1]
    assert regularized[0].get_xticklabels()[1].get_text() == f"y={final[0]:.0f}, p={final[1]:.3f}"


def test_pixels_beyond_white_keep_the_grey_scale_and_get_a_pointed_end():
    result = made_up_result(clip=False)
    result.confident_images[0, 1] = 4.0  # a pixel beyond white: drawn white, and the colour bar says so
    fig = plot_comparison(result, made_up_result(clip=True), START_NAMES, "t", 0.99)
    assert image_axes(fig)[0].images[0].get_clim() == (0.0, 1.0)
    (bar,) = color_bars(fig)
    assert bar.extend == "max"


def test_table_has_a_row_per_digit_with_logit_probability_class_and_first_sure_step():
    result = made_up_result()
    predicted = torch.tensor([[3, 5, 1], [3, 5, 8]])
    table = format_table(result, START_NAMES, predicted, confident=0.99)
    lines = table.splitlines()
    assert "random start" in lines[0] and "ones start" in lines[0]
    rows = [line for line in lines if line.split("|")[0].strip() in {"3", "5", "8"}]
    assert len(rows) == len(NEURONS)
    cells = rows[1].split("|")[1].split()  # digit 5, random start
    assert cells == [f"{result.logit[-1, 0, 1].item():.1f}", f"{result.probability[-1, 0, 1].item():.6f}", "5", "never"]
    assert rows[2].split("|")[2].split()[-1] == "never"
    assert lines[-1] == "sure at: the first step at which the target's probability reached 0.99"


def test_write_comparison_writes_one_titled_png(tmp_path, monkeypatch):
    titles = []
    save = input_opt_plots.save_figure

    def recording(fig, path):
        titles.append(fig._suptitle.get_text())
        return save(fig, path)

    monkeypatch.setattr(input_opt_plots, "save_figure", recording)
    args = argparse.Namespace(steps=4, lr=0.1, out=tmp_path)
    regular = made_up_result(clip=True, seed=1)
    written = write_comparison(args, "the test CNN", START_NAMES, made_up_result(), regular, "L2 0.05", 0.99)
    assert written == tmp_path / "input_opt_regularized.png"
    assert [p.name for p in tmp_path.iterdir()] == ["input_opt_regularized.png"]
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(titles) == 1 and "the test CNN" in titles[0] and "4 Adam steps" in titles[0]
    assert "regularizers: L2 0.05" in titles[0]


def test_classify_runs_a_network_without_parameters_on_the_images_device():
    weightless = torch.nn.Flatten()  # (N, 784) "logits", no parameters or buffers
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    predicted, confidence = classify(weightless, images)
    assert torch.equal(predicted, images.flatten(1).argmax(1))
    torch.testing.assert_close(confidence, images.flatten(1).softmax(1).max(1).values)
