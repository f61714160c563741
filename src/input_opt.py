"""Task 1: input optimisation. Which input makes one output neuron of the MNIST CNN happiest?

    python src/input_opt.py                              # digits 0-9, random and all-ones starts
    python src/input_opt.py --neuron 3 --init ones       # one digit from one start
    python src/input_opt.py --steps 500 --lr 0.02 --device cuda
    python src/input_opt.py --jitter 2 --blur 0.5        # smoother, Lucid-style prototypes
    python src/input_opt.py --l2 0 --tv 0 --jitter 0 --blur 0 --no-clip   # the exercise only

Training finds weights theta that make f(x, theta) right on the data. Here theta stays fixed and
the input moves: starting from x0 of shape (1, 1, 28, 28), gradient ascent on one logit
y_i = f(x, theta)_i looks for argmax_x y_i. The gradient with respect to x comes from
torch.func.grad; torch.func.vmap runs all (start, digit) pairs at once.

Every run optimises twice from the same starts: once plainly (the exercise: the objective is the
logit alone, pixels are free) and once with regularisers (L2 decay, total variation, jitter,
blur, clipping to [0, 1]) that push the result towards something that looks like a digit. Set
every regulariser to zero and pass --no-clip to run the exercise alone.

Writes figures/input_opt_grid.png (the optimised inputs), figures/input_opt_curves.png (objective
and probability per step) and figures/input_opt_regularised.png (plain next to regularised), and
prints the final logit and probability per digit.
"""

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from models import functional_state, load_cnn
from util import (
    WEIGHTS_PATH,
    UserError,
    add_common_arguments,
    check_output_folder,
    digit,
    get_device,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    relative,
    run_main,
    save_figure,
    set_seed,
)

STARTS = ("random", "ones")
DIGITS = tuple(range(10))
STEPS = 100
LR = 0.1
CONFIDENT = 0.99  # the probability at which we note the first step the network is sure


@dataclass(frozen=True)
class Regularisers:
    """What keeps the optimised input image-like; all zero / False is the plain exercise.

    l2:     weight of the penalty l2 * sum(x^2) subtracted from the logit (Simonyan et al. 2013)
    tv:     weight of the total variation sum |x[r+1, c] - x[r, c]| + |x[r, c+1] - x[r, c]|
    jitter: shift the image by up to this many pixels (zero fill) before every gradient
    blur:   standard deviation in pixels of a Gaussian blur applied after every step
    clip:   project the pixels onto [0, 1] after every step, the range of real MNIST images
    """

    l2: float = 0.0
    tv: float = 0.0
    jitter: int = 0
    blur: float = 0.0
    clip: bool = False

    def active(self):
        return bool(self.l2 or self.tv or self.jitter or self.blur or self.clip)

    def describe(self):
        parts = [
            f"L2 {self.l2:g}" if self.l2 else "no L2",
            f"TV {self.tv:g}" if self.tv else "no TV",
            f"jitter {self.jitter} px" if self.jitter else "no jitter",
            f"blur sigma {self.blur:g} px" if self.blur else "no blur",
            "clip to [0, 1]" if self.clip else "no clipping",
        ]
        return ", ".join(parts)


NO_REGULARISERS = Regularisers()
PROTOTYPE_REGULARISERS = Regularisers(l2=0.05, tv=0.05, jitter=1, blur=0.0, clip=True)


def make_starts(kinds, generator=None, device="cpu"):
    """Starting images (S, 1, 28, 28): "random" is uniform in [0, 1), "ones" is all ones (white)."""
    images = []
    for kind in kinds:
        if kind == "random":
            images.append(torch.rand(1, 28, 28, generator=generator))
        elif kind == "ones":
            images.append(torch.ones(1, 28, 28))
        else:
            raise ValueError(f"unknown start {kind!r}; use one of {STARTS}")
    return torch.stack(images).to(device)


def shift(x, dy, dx):
    """Translate images (..., 28, 28) by (dy, dx) pixels, filling with black (zeros)."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def gaussian_blur(x, sigma):
    """Blur images (N, 1, 28, 28) with a separable Gaussian of standard deviation `sigma` pixels."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    # replicate padding keeps a uniform image uniform (zero padding would darken the border)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def total_variation(x):
    """Anisotropic total variation of one image (1, 28, 28): the summed absolute neighbour differences."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., :, 1:] - x[..., :, :-1]).abs().sum()


def make_objective(model, regularisers=NO_REGULARISERS):
    """objective(x, target, dy, dx) for one image x (1, 28, 28) and a one-hot target (10,).

    Returns (logit_i - regularisers, (the same value, logit_i, softmax probability of i)) so that
    torch.func.grad(objective, has_aux=True) gives the gradient and the numbers we plot.
    The one-hot target (rather than an index) keeps the function vmap-friendly.
    """
    params, buffers = functional_state(model)

    def objective(x, target, dy=0, dx=0):
        logits = functional_call(model, (params, buffers), (shift(x, dy, dx).unsqueeze(0),))[0]  # (10,)
        logit = (logits * target).sum()
        probability = (logits.softmax(0) * target).sum()
        value = logit
        if regularisers.l2:
            value = value - regularisers.l2 * (x**2).sum()
        if regularisers.tv:
            value = value - regularisers.tv * total_variation(x)
        return value, (value.detach(), logit.detach(), probability.detach())

    return objective


def make_gradients(model, regularisers=NO_REGULARISERS):
    """gradients(x, targets, dy=0, dx=0) for a batch x (B, 1, 28, 28) and one-hot targets (B, 10).

    It returns (gradient (B, 1, 28, 28), objective (B,), logit (B,), probability (B,)):
    torch.func.grad differentiates the objective of one image, torch.func.vmap maps it over the batch.
    """
    objective = make_objective(model, regularisers)

    def gradients(x, targets, dy=0, dx=0):
        def one(x, target):
            gradient, (value, logit, probability) = grad(objective, has_aux=True)(x, target, dy, dx)
            return gradient, value, logit, probability

        return vmap(one)(x, targets)

    return gradients


def input_gradients(model, x, targets, regularisers=NO_REGULARISERS, dy=0, dx=0):
    """One call of `make_gradients(model, regularisers)`: see there."""
    return make_gradients(model, regularisers)(x, targets, dy, dx)


@dataclass
class Result:
    """Optimised inputs and their per-step history for S starts and K target digits.

    images: (S, K, 1, 28, 28) final inputs; starts: (S, 1, 28, 28)
    objective, logit, probability: (steps + 1, S, K), entry t before step t, the last after the final step
        (with jitter, entry t < steps belongs to the shifted image that step's gradient was taken at)
    confident_step: (S, K) first step whose input the network gives probability >= CONFIDENT, -1 if none
    confident_images: (S, K, 1, 28, 28) the input at that step (the final input where there is none)
    """

    images: torch.Tensor
    starts: torch.Tensor
    neurons: tuple
    objective: torch.Tensor
    logit: torch.Tensor
    probability: torch.Tensor
    confident_step: torch.Tensor
    confident_images: torch.Tensor
    regularisers: Regularisers


def adam_ascent_step(x, gradient, state, lr, betas=(0.9, 0.999), eps=1e-8):
    """One Adam step uphill: x + lr * m_hat / (sqrt(v_hat) + eps); `state` (m, v, t) is updated in place.

    The same update as torch.optim.Adam(maximize=True), written out because it is short and
    because the first torch.optim step imports torch's compiler, which costs seconds here.
    Dividing by sqrt(v_hat) + eps keeps every step finite, even for a zero gradient.
    """
    beta1, beta2 = betas
    state["t"] += 1
    state["m"].mul_(beta1).add_(gradient, alpha=1 - beta1)
    state["v"].mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
    m_hat = state["m"] / (1 - beta1 ** state["t"])
    v_hat = state["v"] / (1 - beta2 ** state["t"])
    return x + lr * m_hat / (v_hat.sqrt() + eps)


def optimize_inputs(model, neurons, starts, steps, lr, regularisers=NO_REGULARISERS, generator=None):
    """Gradient ascent on logit `neurons[k]` from every start image; returns a `Result`.

    Steps use Adam on the pixels, whose step is lr * (running mean of the gradient) / (running
    root mean square + eps): every pixel moves by about lr per step, whatever the scale of the
    gradient, and nothing is ever divided by zero. (Normalising x by its standard deviation, as
    is sometimes done, is 0/0 for the all-ones start.) Jitter offsets come from `generator`.
    """
    device = starts.device
    neurons = tuple(int(n) for n in neurons)
    S, K = len(starts), len(neurons)
    targets = F.one_hot(torch.tensor(neurons, device=device), 10).to(starts.dtype)  # (K, 10)
    targets = targets.repeat(S, 1)  # (S*K, 10), start-major like x below
    x = starts.repeat_interleave(K, dim=0).clone()  # (S*K, 1, 28, 28)
    gradients = make_gradients(model, regularisers)
    adam = {"m": torch.zeros_like(x), "v": torch.zeros_like(x), "t": 0}
    history = {"objective": [], "logit": [], "probability": []}
    confident_step = torch.full((S * K,), -1, device=device)
    confident_images = torch.zeros_like(x)

    def record(step, value, logit, probability):
        if not torch.isfinite(value).all():
            # Adam keeps each step finite, but a huge --lr can still push pixels past float range
            raise UserError(
                f"gradient ascent broke down at step {step}: the objective became NaN or Inf; "
                f"lower --lr (now {lr:g}) and run again."
            )
        for name, v in zip(history, (value, logit, probability)):
            history[name].append(v)
        first = (probability >= CONFIDENT) & (confident_step < 0)
        confident_step[first] = step
        confident_images[first] = x[first]

    for step in range(steps):
        dy = dx = 0
        if regularisers.jitter:
            dy, dx = torch.randint(-regularisers.jitter, regularisers.jitter + 1, (2,), generator=generator).tolist()
        gradient, value, logit, probability = gradients(x, targets, dy, dx)
        record(step, value, logit, probability)
        x = adam_ascent_step(x, gradient, adam, lr)
        if regularisers.blur:
            x = gaussian_blur(x, regularisers.blur)
        if regularisers.clip:
            x = x.clamp(0, 1)
    _, value, logit, probability = gradients(x, targets)
    record(steps, value, logit, probability)
    never = confident_step < 0
    confident_images[never] = x[never]
    stacked = {name: torch.stack(v).view(steps + 1, S, K).cpu() for name, v in history.items()}
    return Result(
        images=x.view(S, K, 1, 28, 28).cpu(),
        starts=starts.detach().cpu(),
        neurons=neurons,
        confident_step=confident_step.view(S, K).cpu(),
        confident_images=confident_images.view(S, K, 1, 28, 28).cpu(),
        regularisers=regularisers,
        **stacked,
    )


@torch.no_grad()
def classify(model, images):
    """Predicted digit and its probability for images (..., 1, 28, 28)."""
    device = next(model.parameters()).device
    flat = images.reshape(-1, 1, 28, 28).to(device)
    probabilities = model(flat).softmax(1)
    confidence, predicted = probabilities.max(1)
    shape = images.shape[:-3]
    return predicted.view(shape).cpu(), confidence.view(shape).cpu()


def format_table(result, start_names, predicted):
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
    lines.append(f"sure at: the first step at which the target's probability reached {CONFIDENT}")
    return "\n".join(lines)


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
    centres = [x + (size - 1) / 2 for x in left]
    ax.set_xticks(centres, captions, fontsize=8)
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.set_ylabel(label, fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for x, text in zip(centres, titles or ()):
        ax.text(x, -2, text, ha="center", va="bottom", fontsize=10)
    bar = fig.colorbar(shown, ax=ax, fraction=0.015, pad=0.01)
    bar.set_label("pixel value\n(MNIST: 0 black, 1 white)", fontsize=7)
    bar.ax.tick_params(labelsize=7)


def plot_grid(result, start_names, title):
    """Optimised inputs: one row per start, one column per target digit, logit and probability below."""
    import matplotlib.pyplot as plt

    S, K = result.images.shape[:2]
    fig, axes = plt.subplots(S, 1, figsize=(1.45 * K + 1.2, 1.6 * S + 0.7), squeeze=False, layout="constrained")
    for s in range(S):
        captions = [f"y={result.logit[-1, s, k]:.0f}\np={result.probability[-1, s, k]:.4f}" for k in range(K)]
        titles = [f"digit {n}" for n in result.neurons] if s == 0 else None
        _show_row(
            fig,
            axes[s, 0],
            result.images[s],
            not result.regularisers.clip,
            f"{start_names[s]}\nstart",
            captions,
            titles,
        )
    fig.suptitle(title, fontsize=10)
    return fig


def plot_curves(result, start_names, title):
    """Objective (the logit) and the target probability per step, one row per start."""
    import matplotlib.pyplot as plt

    S = len(start_names)
    steps = torch.arange(result.logit.shape[0])
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(S, 2, figsize=(11, 3.2 * S + 0.6), squeeze=False)
    for s in range(S):
        for k, neuron in enumerate(result.neurons):
            colour = colours(neuron)
            axes[s, 0].plot(steps, result.objective[:, s, k], color=colour, label=f"digit {neuron}")
            axes[s, 1].plot(steps, result.probability[:, s, k], color=colour, label=f"digit {neuron}")
        axes[s, 1].axhline(CONFIDENT, color="black", linestyle=":", linewidth=1, label=f"p = {CONFIDENT}")
        axes[s, 0].set_ylabel(f"{start_names[s]} start\nobjective: logit $y_i$")
        axes[s, 1].set_ylabel("softmax probability $p_i$")
        axes[s, 1].set_ylim(-0.02, 1.02)
        # the probability saturates within a few steps; a logarithmic step axis shows how fast
        axes[s, 1].set_xscale("symlog", linthresh=1)
        axes[s, 1].set_xlim(0, len(steps) - 1)
        ticks = [t for t in (0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000) if t < len(steps)]
        axes[s, 1].set_xticks(ticks, [str(t) for t in ticks])
        axes[s, 0].set_xlabel("step")
        axes[s, 1].set_xlabel("step (logarithmic axis)")
        for ax in axes[s]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_title("objective: the target logit $y_i$ (no regularisers)")
    axes[0, 1].set_title("softmax probability of the target digit")
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=2)
    axes[0, 1].legend(handles=axes[0, 1].lines[-1:], loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_comparison(plain, regularised, start_names, title):
    """Per start three rows: plain input when first sure, plain optimum, regularised optimum."""
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
            f"{name}\nplain, first\np ≥ {CONFIDENT}",
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
            regularised.images[s],
            not regularised.regularisers.clip,
            f"{name}\nregularised",
            [f"p={regularised.probability[-1, s, k]:.4f}" for k in range(K)],
        )
    fig.suptitle(title, fontsize=10)
    return fig


def neuron_choice(text):
    """argparse type: "all" or one digit 0-9."""
    if text == "all":
        return DIGITS
    return (digit(text),)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        type=Path,
        default=WEIGHTS_PATH,
        help=f"trained CNN checkpoint (default: {relative(WEIGHTS_PATH)})",
    )
    parser.add_argument(
        "--neuron",
        type=neuron_choice,
        default=DIGITS,
        metavar="{0-9,all}",
        help="output neuron (digit) to maximise, or all (default: all)",
    )
    parser.add_argument(
        "--init",
        choices=("random", "ones", "both"),
        default="both",
        help="starting image: uniform random in [0, 1), all ones, or both (default: both)",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=STEPS, help=f"gradient ascent steps per run (default: {STEPS})"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=LR, help=f"Adam step size, in pixel units (default: {LR:g})"
    )
    reg = parser.add_argument_group("regularisers of the second, regularised run (all 0 with --no-clip skips that run)")
    default = PROTOTYPE_REGULARISERS
    reg.add_argument(
        "--l2", type=non_negative_float, default=default.l2, help=f"L2 decay weight (default: {default.l2:g})"
    )
    reg.add_argument(
        "--tv", type=non_negative_float, default=default.tv, help=f"total variation weight (default: {default.tv:g})"
    )
    reg.add_argument(
        "--jitter",
        type=non_negative_int,
        default=default.jitter,
        help=f"random shift in pixels before each gradient (default: {default.jitter})",
    )
    reg.add_argument(
        "--blur",
        type=non_negative_float,
        default=default.blur,
        help=f"Gaussian blur sigma in pixels after each step (default: {default.blur:g})",
    )
    reg.add_argument(
        "--clip",
        action=argparse.BooleanOptionalAction,
        default=default.clip,
        help="clip pixels to [0, 1] after each step (default: --clip)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="CPU threads for torch; the images are small, and more threads than idle cores slow it down (default: 1)",
    )
    add_common_arguments(parser)
    return parser


def main():
    args = build_parser().parse_args()
    check_output_folder(args.out)
    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    model = load_cnn(args.weights, device)
    set_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start_names = STARTS if args.init == "both" else (args.init,)
    starts = make_starts(start_names, generator, device)
    regularisers = Regularisers(l2=args.l2, tv=args.tv, jitter=args.jitter, blur=args.blur, clip=args.clip)
    where = f"{len(args.neuron)} digit(s) x {len(start_names)} start(s), {args.steps} steps, lr {args.lr:g}"

    network = f"the MNIST CNN ({relative(args.weights)})"
    began = time.perf_counter()
    plain = optimize_inputs(model, args.neuron, starts, args.steps, args.lr)
    regular = None
    if regularisers.active():
        regular = optimize_inputs(model, args.neuron, starts, args.steps, args.lr, regularisers, generator)
    optimised = time.perf_counter()

    print(f"plain gradient ascent on logit y_i of {network}: {where}, device {device}")
    print(format_table(plain, start_names, classify(model, plain.images)[0]))
    grid = plot_grid(
        plain,
        start_names,
        f"Inputs that maximise logit $y_i$ of {network}: {args.steps} Adam steps (lr {args.lr:g}), "
        "no regularisers\nbelow each: final logit y and softmax probability p of the target digit",
    )
    curves = plot_curves(
        plain,
        start_names,
        f"Gradient ascent on the input of {network}: {args.steps} Adam steps, lr {args.lr:g}",
    )
    written = [
        save_figure(grid, args.out / "input_opt_grid.png"),
        save_figure(curves, args.out / "input_opt_curves.png"),
    ]
    if regular is not None:
        print(f"\nregularised ({regularisers.describe()}):")
        print(format_table(regular, start_names, classify(model, regular.images)[0]))
        comparison = plot_comparison(
            plain,
            regular,
            start_names,
            f"Plain gradient ascent vs regularised, {network}, {args.steps} steps; "
            "p = softmax probability of the target digit\n"
            f"regularisers: {regularisers.describe()}",
        )
        written.append(save_figure(comparison, args.out / "input_opt_regularised.png"))
    else:
        print("\nno regulariser is set, so the regularised run and its figure were skipped")
    done = time.perf_counter()
    print(
        f"\nwrote {', '.join(relative(p) for p in written)}; "
        f"optimisation {optimised - began:.1f} s, figures {done - optimised:.1f} s"
    )


if __name__ == "__main__":
    run_main(main)
