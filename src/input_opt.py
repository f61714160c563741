"""Task 1: input optimization, the input that makes one output neuron of the MNIST CNN happiest.

    python src/input_opt.py                              # digits 0-9, random and all-ones starts, 100 steps
    python src/input_opt.py --neuron 3 --init ones --steps 500 --lr 0.02
The weights theta stay fixed and the input moves: max_x y_i = f(x, theta). `forward_pass` returns y_i
for one image x, `torch.func.grad(forward_pass)` its gradient, and `optimize_input` climbs it with
`torch.optim.Adam(maximize=True)` from a random and an all-ones start of shape [1, 1, 28, 28].
Prints y_i and its probability per digit and start; draws outputs/input_opt/input_opt_grid.png and _curves.png.
"""

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from models import functional_state, load_cnn

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, after the run checked MPLBACKEND
    from matplotlib.figure import Figure

STARTS = ("random", "ones")
DIGITS = tuple(range(10))
FURTHER = "python -m iml input-opt-regularized"


def make_forward_pass(net: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """Return `forward_pass(x, neuron)`, the logit y_i of `net` for one image x (1, 28, 28).

    Args:
        net: The trained CNN; its weights stay fixed.

    Returns:
        The function of one image and one neuron index (a 0-d integer tensor) that `grad` differentiates.
    """
    from iml.validation import check_forward_pass, check_network  # shapes and dtypes only: it works under vmap

    params, buffers = functional_state(check_network(net, "make_forward_pass"))

    def forward_pass(x: Tensor, neuron: Tensor) -> Tensor:
        check_forward_pass(x, neuron)
        # TODO: the logits (10,) of the one image x by functional_call(net, (params, buffers), ...), then y_i
        ### BEGIN SOLUTION
        logits = functional_call(net, (params, buffers), (x.unsqueeze(0),))[0]  # (10,)
        return logits.gather(0, neuron.view(1))[0]  # y_i; gather, unlike logits[neuron], works under vmap
        ### END SOLUTION

    return forward_pass


def make_start(kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Return a starting image of shape [1, 1, 28, 28].

    Args:
        kind: "random" (uniform in [0, 1)) or "ones" (all ones, white); another is refused (ValueError).
        generator: The random generator of the random start, a torch.Generator or None.

    Returns:
        The image (1, 1, 28, 28).
    """
    from iml.validation import check_start

    check_start(kind, generator, STARTS)  # "zeros", or a seed where the generator belongs
    if kind == "random":
        return torch.rand(1, 1, 28, 28, generator=generator)
    return torch.ones(1, 1, 28, 28)


@dataclass
class Ascent:
    """Optimized inputs for S starts and K digits, and y_i and p_i before each step and after the last."""

    images: Tensor  # (S, K, 1, 28, 28)
    start_names: tuple[str, ...]
    neurons: tuple[int, ...]
    logit: Tensor  # (steps + 1, S, K)
    probability: Tensor  # (steps + 1, S, K)


def optimize_input(net: nn.Module, neurons: Sequence[int], starts: dict[str, Tensor], steps: int, lr: float) -> Ascent:
    """Maximize logit `neurons[k]` of `net` from every start, all at once.

    Args:
        net: The trained CNN.
        neurons: The K digits whose logits are maximized.
        starts: The S starting images (1, 1, 28, 28) by name.
        steps: Adam steps.
        lr: Adam's step size.

    Returns:
        The optimized inputs and their logit and softmax probability at every step.

    Raises:
        FloatingPointError: When a logit becomes NaN or Inf (a learning rate far too large).
    """
    from iml.validation import check_ascent

    num_starts, num_digits = check_ascent(net, neurons, starts, steps, lr)  # S and K, each start and digit checked
    x = torch.cat(list(starts.values())).repeat_interleave(num_digits, dim=0)  # (S*K, 1, 28, 28)
    targets = torch.tensor(neurons, device=x.device).repeat(num_starts)  # (S*K,), start-major like x
    logit, probability = [], []  # y_i and p_i before each step and after the last
    # TODO: the gradients by vmap(grad(forward_pass)) and `steps` steps of torch.optim.Adam(maximize=True) on x;
    # append y_i and p_i (softmax) to logit and probability at every step, and stop on NaN or Inf (FloatingPointError)
    ### BEGIN SOLUTION
    get_grads = vmap(grad(make_forward_pass(net)))  # (B, 1, 28, 28), (B,) -> (B, 1, 28, 28)
    optimizer = torch.optim.Adam([x], lr=lr, maximize=True)  # Adam moves each pixel by about lr per step
    for step in range(steps + 1):
        with torch.no_grad():  # the record needs no graph
            logits = net(x)  # (S*K, 10)
        logit.append(logits.gather(1, targets[:, None])[:, 0])  # (S*K,)
        probability.append(logits.softmax(1).gather(1, targets[:, None])[:, 0])
        if not torch.isfinite(logit[-1]).all():
            raise FloatingPointError(f"gradient ascent broke down at step {step}: the objective became NaN or Inf")
        if step < steps:
            x.grad = get_grads(x, targets)
            optimizer.step()  # x moves uphill
    ### END SOLUTION
    history = [torch.stack(v).view(-1, num_starts, num_digits).cpu() for v in (logit, probability)]  # (steps+1, S, K)
    return Ascent(x.view(num_starts, num_digits, 1, 28, 28).cpu(), tuple(starts), tuple(neurons), *history)


def format_table(ascent: Ascent) -> str:
    """Return the final logit y_i and softmax probability p_i per digit (rows) and start (columns).

    Args:
        ascent: The result of `optimize_input`.

    Returns:
        The table, one line per digit.
    """
    lines = ["digit" + "".join(f" | {name + ' start':>20}" for name in ascent.start_names)]
    lines.append("     " + " | logit y_i        p_i" * len(ascent.start_names))
    for k, neuron in enumerate(ascent.neurons):
        final = zip(ascent.logit[-1, :, k], ascent.probability[-1, :, k])  # per start
        lines.append(f"{neuron:>5}" + "".join(f" | {y:9.1f} {p:10.6f}" for y, p in final))
    return "\n".join(lines)


def plot_grid(ascent: Ascent, title: str) -> "Figure":
    """Draw the optimized inputs, a row per start and a column per digit, on a colour scale centred at zero.

    Args:
        ascent: The result of `optimize_input`.
        title: The figure's title.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    rows, cols = ascent.images.shape[:2]
    bound = max(float(ascent.images.abs().max()), 1.0)  # pixels leave [0, 1]: signed, so symmetric about 0
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 2, 1.5 * rows + 1), squeeze=False, layout="constrained")
    for (s, k), ax in np.ndenumerate(axes):
        shown = ax.imshow(ascent.images[s, k, 0].numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set(xticks=[], yticks=[], title=f"digit {ascent.neurons[k]}" if s == 0 else "")
        ax.set_xlabel(f"y={ascent.logit[-1, s, k]:.0f}, p={ascent.probability[-1, s, k]:.3f}", fontsize=8)
        ax.set_ylabel(f"{ascent.start_names[s]} start" if k == 0 else "")
    fig.colorbar(shown, ax=axes, shrink=0.8, label="pixel value\nred > 0, white 0, blue < 0\n(MNIST pixels: 0 to 1)")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_curves(ascent: Ascent, title: str) -> "Figure":
    """Draw the logit y_i (left) and its softmax probability p_i (right) per step, a row per start.

    Args:
        ascent: The result of `optimize_input`.
        title: The figure's title.

    Returns:
        The figure.
    """
    from iml.input_opt_plots import plot_ascent_curves

    return plot_ascent_curves(ascent, title)


def build_parser() -> argparse.ArgumentParser:
    """Return the command line of Task 1; every option's help states its default.

    Returns:
        The parser.
    """
    from iml.cli import add_common_arguments, digit, float_range, int_range, path_argument
    from iml.common import WEIGHTS_PATH, relative

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "input_opt")
    parser.add_argument("--init", choices=(*STARTS, "both"), default="both", help="starting image (default: both)")
    for flag, kind, default, text in (
        ("--neuron", lambda t: DIGITS if t == "all" else (digit(t),), DIGITS, "digit 0-9 or all (default: all)"),
        ("--weights", path_argument, WEIGHTS_PATH, f"CNN checkpoint (default: {relative(WEIGHTS_PATH)})"),
        ("--steps", int_range(1, 100_000), 100, "Adam steps, 1-100000 (default: 100)"),
        ("--lr", float_range(0, 100, low_open=True), 0.1, "Adam step size, above 0 to 100 (default: 0.1)"),
        ("--threads", int_range(1, 1024), 1, "CPU threads for torch, 1-1024 (default: 1)"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=text)
    return parser


def run(args: argparse.Namespace) -> None:
    """Optimize the inputs, print the table and write the two figures.

    Args:
        args: The parsed command line.

    Raises:
        UserError: When the ascent breaks down (iml.cli's one-line error).
    """
    from iml.cli import UserError, check_output_folder, device_from_argument
    from iml.common import relative
    from iml.outputs import write_figures
    from iml.progress import optimizer_steps

    check_output_folder(args.out)
    torch.set_num_threads(args.threads)
    device = device_from_argument(args.device)
    net = load_cnn(args.weights, device)
    names = STARTS if args.init == "both" else (args.init,)
    starts = {name: make_start(name, torch.Generator().manual_seed(args.seed)).to(device) for name in names}
    try:
        with optimizer_steps(args.steps, "gradient ascent"):  # a bar counts Adam's steps
            ascent = optimize_input(net, args.neuron, starts, args.steps, args.lr)
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr (now {args.lr:g}) and run again.") from None
    about = f"the MNIST CNN ({relative(args.weights)}), {args.steps} Adam steps (lr {args.lr:g})"
    print(f"gradient ascent on logit y_i of {about}, device {device}\n{format_table(ascent)}")
    figures = {
        "input_opt_grid.png": plot_grid(ascent, f"Inputs that maximize logit $y_i$ of {about}"),
        "input_opt_curves.png": plot_curves(ascent, f"Gradient ascent on the input of {about}"),
    }
    written = ", ".join(relative(path) for path in write_figures(figures, args.out, "input_opt"))  # all or none
    print(f"wrote {written}\nfurther: `{FURTHER}` adds L2, total variation, jitter, blur and clipping")


def main() -> None:
    """Run Task 1 from the command line; an error a user can cause ends in one line."""
    from iml.cli import run_main

    run_main(lambda: run(build_parser().parse_args()))


if __name__ == "__main__":
    main()
