"""Task 1 further: regularized input optimization, ``python -m iml input-opt-regularized``.

    python -m iml input-opt-regularized                          # L2 0.05, TV 0.05, jitter 1, clip
    python -m iml input-opt-regularized --jitter 2 --blur 0.5    # smoother, Lucid-style prototypes
    python -m iml input-opt-regularized --neuron 3 --init ones --steps 300

The exercise (src/input_opt.py) climbs the logit alone with free pixels: the optimum is a high-contrast
pattern far outside the pixel range of MNIST. As in Lucent, three parts can be swapped here: the
objective (the logit minus `Penalties`: L2 decay and total variation), the `Parametrization` of the
image (jitter before each gradient, blur and clipping after each step) and the loop `optimize_inputs`.
Each run optimizes twice from the same starts, plainly and regularized, and draws both side by side in
input_opt_regularized.png; with every regularizer off (and --no-clip) the regularized run is skipped.
"""

import argparse
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from torchvision.transforms.functional import gaussian_blur

from iml.validation import check_count, check_device, check_images, check_neurons, check_number, check_start_kinds
from models import functional_state

COMMAND = "python -m iml input-opt-regularized"
START_KINDS = ("random", "ones")
CONFIDENT = 0.99  # the probability at which we note the first step the network is sure


@dataclass(frozen=True)
class Penalties:
    """Terms subtracted from the logit in the objective; zero is the plain exercise.

    l2: weight of l2 * sum(x^2) (Simonyan et al. 2013, arXiv:1312.6034)
    tv: weight of the total variation sum |x[r+1, c] - x[r, c]| + |x[r, c+1] - x[r, c]|
    """

    l2: float = 0.0
    tv: float = 0.0


@dataclass(frozen=True)
class Parametrization:
    """How the optimized image is moved between gradient steps; the defaults are free pixels.

    jitter: shift the image by up to this many pixels (zero fill) before every gradient (Lucid)
    blur:   standard deviation in pixels of a Gaussian blur after every step (Yosinski et al. 2015,
            arXiv:1506.06579)
    clip:   project the pixels onto [0, 1], the range of real MNIST images, after every step
    """

    jitter: int = 0
    blur: float = 0.0
    clip: bool = False

    def offsets(self, generator=None):
        """The (dy, dx) shift for the next gradient: uniform in [-jitter, jitter], or (0, 0)."""
        if not self.jitter:
            return 0, 0
        return tuple(torch.randint(-self.jitter, self.jitter + 1, (2,), generator=generator).tolist())

    def after_step(self, x):
        """Blur, then clip, images x (B, 1, 28, 28) after a step, as configured."""
        if self.blur:
            radius = min(math.ceil(3 * self.blur), 27)  # torchvision's reflect padding needs radius < 28
            x = gaussian_blur(x, kernel_size=2 * radius + 1, sigma=self.blur)
        return x.clamp(0, 1) if self.clip else x


FREE_PIXELS = Parametrization()
NO_PENALTIES = Penalties()
PROTOTYPE = (Penalties(l2=0.05, tv=0.05), Parametrization(jitter=1, blur=0.0, clip=True))


def starting_images(kinds, generator=None, device="cpu"):
    """Starting images (S, 1, 28, 28) by name: "random" uniform in [0, 1), "ones" all ones (white)."""
    makers = {"random": lambda: torch.rand(1, 28, 28, generator=generator), "ones": lambda: torch.ones(1, 28, 28)}
    check_start_kinds(kinds, generator, START_KINDS)
    device = check_device(device, "starting_images")  # before the generator draws
    return torch.stack([makers[kind]() for kind in kinds]).to(device)


def shift(x, dy, dx):
    """Translate images (..., 28, 28) by (dy, dx) pixels, filling with black (zeros)."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def total_variation(x):
    """Anisotropic total variation of one image (1, 28, 28): the summed absolute neighbour differences."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., :, 1:] - x[..., :, :-1]).abs().sum()


def make_objective(model, penalties=NO_PENALTIES):
    """objective(x, target, dy, dx) for one image x (1, 28, 28) and a one-hot target (10,).

    Returns (logit_i - penalties, (the same value, logit_i, softmax probability of i)) so that
    torch.func.grad(objective, has_aux=True) gives the gradient and the numbers we plot.
    The one-hot target (rather than an index) keeps the function vmap-friendly.
    """
    params, buffers = functional_state(model)

    def objective(x, target, dy=0, dx=0):
        logits = functional_call(model, (params, buffers), (shift(x, dy, dx).unsqueeze(0),))[0]  # (10,)
        logit = (logits * target).sum()
        probability = (logits.softmax(0) * target).sum()
        value = logit
        if penalties.l2:
            value = value - penalties.l2 * (x**2).sum()
        if penalties.tv:
            value = value - penalties.tv * total_variation(x)
        return value, (value.detach(), logit.detach(), probability.detach())

    return objective


def make_gradients(model, penalties=NO_PENALTIES):
    """gradients(x, targets, dy=0, dx=0) for a batch x (B, 1, 28, 28) and one-hot targets (B, 10).

    It returns (gradient (B, 1, 28, 28), objective (B,), logit (B,), probability (B,)):
    torch.func.grad differentiates the objective of one image, torch.func.vmap maps it over the batch.
    """
    per_image = grad(make_objective(model, penalties), has_aux=True)

    def gradients(x, targets, dy=0, dx=0):
        gradient, (value, logit, probability) = vmap(per_image, in_dims=(0, 0, None, None))(x, targets, dy, dx)
        return gradient, value, logit, probability

    return gradients


@dataclass
class Result:
    """Optimized inputs and their per-step history for S starts and K target digits.

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
    parametrization: Parametrization


class History:
    """Bookkeeping of a run: objective, logit and probability per step, and the first confident input."""

    def __init__(self, x):
        self.values = {"objective": [], "logit": [], "probability": []}
        self.confident_step = torch.full((len(x),), -1, device=x.device)
        self.confident_images = torch.zeros_like(x)

    def record(self, step, x, value, logit, probability):
        """Note the values (B,) of images x (B, 1, 28, 28) before `step`; raises FloatingPointError on NaN/Inf."""
        if not torch.isfinite(value).all():
            # Adam keeps each step finite, but a huge learning rate can still push pixels past float range
            raise FloatingPointError(f"gradient ascent broke down at step {step}: the objective became NaN or Inf")
        for name, v in zip(self.values, (value, logit, probability)):
            self.values[name].append(v)
        first = (probability >= CONFIDENT) & (self.confident_step < 0)
        self.confident_step[first] = step
        self.confident_images[first] = x[first]

    def result(self, x, starts, neurons, parametrization):
        """The `Result` of the run that ended at images x (S*K, 1, 28, 28)."""
        S, K = len(starts), len(neurons)
        never = self.confident_step < 0
        self.confident_images[never] = x[never]
        stacked = {name: torch.stack(v).view(-1, S, K).cpu() for name, v in self.values.items()}
        return Result(
            images=x.detach().view(S, K, 1, 28, 28).cpu(),
            starts=starts.detach().cpu(),
            neurons=neurons,
            confident_step=self.confident_step.view(S, K).cpu(),
            confident_images=self.confident_images.view(S, K, 1, 28, 28).cpu(),
            parametrization=parametrization,
            **stacked,
        )


def optimize_inputs(
    model, neurons, starts, steps, lr, penalties=NO_PENALTIES, parametrization=FREE_PIXELS, generator=None
):
    """Gradient ascent on logit `neurons[k]` of `model` from every start image (S, 1, 28, 28); returns a `Result`.

    Each step: the gradient of the objective at the (jittered) image, a step of
    torch.optim.Adam(maximize=True), then the parametrization's after-step (blur, clip), written
    into the optimized tensor in place so that Adam keeps its moments. Adam moves every pixel by
    about lr per step whatever the scale of the gradient and never divides by zero (normalizing x by
    its standard deviation, as is sometimes done, is 0/0 for the all-ones start). Jitter offsets come
    from `generator`. Raises FloatingPointError when the objective stops being finite; refuses, before any
    work, digits that are no ints from 0 up (3.7 would become 3), starts that are no float images (S, 1, 28, 28),
    a negative number of steps and a step size that is not above 0.
    """
    check_neurons(neurons, "optimize_inputs")
    check_images(starts, "optimize_inputs", "starts")
    check_count(steps, "steps", "optimize_inputs", low=0)
    check_number(lr, "lr", "optimize_inputs", above=0)
    neurons = tuple(int(n) for n in neurons)
    one_hot = F.one_hot(torch.tensor(neurons, device=starts.device), 10).to(starts.dtype)  # (K, 10)
    targets = one_hot.repeat(len(starts), 1)  # (S*K, 10), start-major like `pixels`
    pixels = starts.repeat_interleave(len(neurons), dim=0).clone()  # (S*K, 1, 28, 28)
    gradients = make_gradients(model, penalties)
    adam = torch.optim.Adam([pixels], lr=lr, maximize=True)
    history = History(pixels)
    for step in range(steps):
        pixels.grad, *values = gradients(pixels, targets, *parametrization.offsets(generator))
        history.record(step, pixels, *values)
        adam.step()
        with torch.no_grad():
            pixels.copy_(parametrization.after_step(pixels))
    history.record(steps, pixels, *gradients(pixels, targets)[1:])
    return history.result(pixels, starts, neurons, parametrization)


def neuron_choice(text):
    """argparse type: "all" or one digit 0-9."""
    from iml.cli import digit

    return tuple(range(10)) if text == "all" else (digit(text),)


def build_parser():
    from iml.cli import add_common_arguments, float_range, int_range, path_argument
    from iml.common import WEIGHTS_PATH, relative

    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--neuron",
        type=neuron_choice,
        default=tuple(range(10)),
        metavar="{0-9,all}",
        help="output neuron (digit) to maximize, or all (default: all)",
    )
    parser.add_argument(
        "--init",
        choices=(*START_KINDS, "both"),
        default="both",
        help="starting image: uniform random in [0, 1), all ones, or both (default: both)",
    )
    weights = f"trained CNN checkpoint (default: {relative(WEIGHTS_PATH)})"
    threads = "CPU threads for torch, 1-1024; more threads than idle cores slow these small images down (default: 1)"
    for flag, kind, default, text in (
        ("--weights", path_argument, WEIGHTS_PATH, weights),
        ("--steps", int_range(1, 100_000), 100, "gradient ascent steps per run, 1-100000 (default: 100)"),
        (
            "--lr",
            float_range(0, 100, low_open=True),
            0.1,
            "Adam step size in pixel units, above 0 to 100 (default: 0.1)",
        ),
        ("--threads", int_range(1, 1024), 1, threads),
    ):
        parser.add_argument(flag, type=kind, default=default, help=text)
    add_regularizer_arguments(
        parser.add_argument_group("regularizers of the second, regularized run (all 0 with --no-clip skips that run)")
    )
    add_common_arguments(parser, "input-opt-regularized")
    return parser


def add_regularizer_arguments(group):
    from iml.cli import float_range, int_range

    penalties, parametrization = PROTOTYPE
    for flag, kind, default, text in (
        ("--l2", float_range(0, 1000), penalties.l2, "L2 decay weight, 0-1000"),
        ("--tv", float_range(0, 1000), penalties.tv, "total variation weight, 0-1000"),
        ("--jitter", int_range(0, 14), parametrization.jitter, "random shift in pixels before each gradient, 0-14"),
        ("--blur", float_range(0, 10), parametrization.blur, "Gaussian blur sigma in pixels after each step, 0-10"),
    ):
        group.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default:g})")
    group.add_argument(
        "--clip",
        action=argparse.BooleanOptionalAction,
        default=parametrization.clip,
        help="clip pixels to [0, 1] after each step (default: --clip)",
    )


def optimize_both(args, model, starts, generator):
    """(plain result, regularized result or None when every regularizer is off, the regularizers in words)."""
    from iml.cli import UserError
    from iml.input_opt_plots import describe
    from iml.progress import optimizer_steps

    penalties = Penalties(l2=args.l2, tv=args.tv)
    parametrization = Parametrization(jitter=args.jitter, blur=args.blur, clip=args.clip)
    runs = 1 if penalties == NO_PENALTIES and parametrization == FREE_PIXELS else 2
    try:
        with optimizer_steps(runs * args.steps, "plain, then regularized ascent" if runs == 2 else "gradient ascent"):
            plain = optimize_inputs(model, args.neuron, starts, args.steps, args.lr)
            regular = None
            if runs == 2:
                regular = optimize_inputs(
                    model, args.neuron, starts, args.steps, args.lr, penalties, parametrization, generator
                )
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr (now {args.lr:g}) and run again.") from None
    return plain, regular, describe(penalties, parametrization)


def main(argv=None):
    """``python -m iml input-opt-regularized [OPTIONS]``: both runs, their tables and the comparison figure."""
    from iml.cli import check_output_folder, device_from_argument
    from iml.common import relative, set_seed
    from iml.input_opt_plots import classify, format_table, write_comparison
    from iml.outputs import figure_set
    from models import load_cnn

    args = build_parser().parse_args(argv)
    check_output_folder(args.out)
    torch.set_num_threads(args.threads)
    device = device_from_argument(args.device)
    model = load_cnn(args.weights, device)
    set_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    start_names = START_KINDS if args.init == "both" else (args.init,)
    began = time.perf_counter()
    plain, regular, regularizers = optimize_both(
        args, model, starting_images(start_names, generator, device), generator
    )
    optimized = time.perf_counter()
    where = f"{len(args.neuron)} digit(s) x {len(start_names)} start(s), {args.steps} steps, lr {args.lr:g}"
    network = f"the MNIST CNN ({relative(args.weights)})"
    print(f"plain gradient ascent on logit y_i of {network}: {where}, device {device}")
    print(format_table(plain, start_names, classify(model, plain.images)[0], CONFIDENT))
    with figure_set(args.out, "input-opt-regularized"):  # with no regularizer: an empty set, no stale figure
        if regular is None:
            print("\nno regularizer is set, so the regularized run and its figure were skipped")
            return
        print(f"\nregularized ({regularizers}):")
        print(format_table(regular, start_names, classify(model, regular.images)[0], CONFIDENT))
        written = write_comparison(args, network, start_names, plain, regular, regularizers, CONFIDENT)
    print(
        f"\nwrote {relative(written)}; "
        f"optimization {optimized - began:.1f} s, figure {time.perf_counter() - optimized:.1f} s"
    )
