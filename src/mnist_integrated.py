"""Task 2: train the MNIST digit CNN, then explain its decisions with Integrated Gradients.

    python src/mnist_integrated.py                  # load data/weights.pth (train if missing), explain 20 digits
    python src/mnist_integrated.py --fast --per-class 100 --steps 100       # the chunked twin, more digits
    python src/mnist_integrated.py --retrain --val-size 0 --epochs 4 --seed 0 --train-only --device cpu
Integrated Gradients (Sundararajan et al. 2017), output F, pixels x_i, black baseline x' = 0:
attributions_i = (x_i - x'_i) * (1/m) * sum_{k=1..m} dF(x' + k/m (x - x'))/dx_i
"""

import argparse
import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR

from models import CNN
from util import batches

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, after the run checked MPLBACKEND
    from matplotlib.figure import Figure

Data = tuple[Tensor, Tensor]  # images (N, 1, 28, 28) in [0, 1], labels (N,)


def train(args: argparse.Namespace, model: nn.Module, data: Data, scheduler: OneCycleLR, epoch: int) -> float:
    """Train one epoch with the cross-entropy loss, on shuffled batches sliced from tensors on the device.

    Args:
        args: Options batch_size and seed.
        model: The CNN.
        data: The training digits.
        scheduler: The learning-rate schedule, with its optimizer; both step every batch.
        epoch: The epoch's number: it seeds the order of the digits, and messages name it.

    Returns:
        The mean training loss.

    Raises:
        FloatingPointError: The loss stopped being finite.
    """
    from iml.validation import check_digit_data

    check_digit_data(model, data, "train")  # pixels 0-255 or float labels would train silently on the wrong thing
    (images, labels), total = data, 0.0
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
    model.train()
    for step, index in enumerate(batches(order.to(images.device), args.batch_size, f"epoch {epoch}", "digits")):
        scheduler.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(images[index]), labels[index])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged: the loss became {loss.item()} in epoch {epoch}, batch {step}")
        loss.backward()
        scheduler.optimizer.step()
        scheduler.step()
        total += loss.item() * len(index)
    return total / len(images)


@torch.no_grad()
def test(model: nn.Module, data: Data) -> float:
    """Measure the accuracy in eval mode, 1,000 digits at a time.

    Args:
        model: The CNN.
        data: The digits to classify.

    Returns:
        The fraction classified correctly.
    """
    from iml.validation import check_digit_data

    check_digit_data(model, data, "test")
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(data[0].split(1000), data[1].split(1000)))
    return correct / len(data[1])


def train_model(args: argparse.Namespace, train_set: Data, val_set: Data, test_set: Data) -> tuple[CNN, float]:
    """Train a fresh CNN with Adam and a one-cycle learning rate (up to args.lr, then down to about 0).

    Args:
        args: Options epochs, batch_size, lr and seed.
        train_set: The digits to train on.
        val_set: Digits whose accuracy is printed after every epoch (may be empty).
        test_set: Digits tested once, at the end.

    Returns:
        The model and its test accuracy.
    """
    model, steps = CNN().to(train_set[0].device), math.ceil(len(train_set[0]) / args.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = OneCycleLR(optimizer, args.lr, epochs=args.epochs, steps_per_epoch=steps)
    where = f"validating on {len(val_set[0])}, device {train_set[0].device}"
    print(f"training on {len(train_set[0])} digits, {where}, epochs: {args.epochs}", flush=True)
    for epoch in range(1, args.epochs + 1):
        loss = train(args, model, train_set, scheduler, epoch)
        validation = f", validation accuracy {test(model, val_set):.2%}" if len(val_set[0]) else ""
        print(f"epoch {epoch}: training loss {loss:.4f}{validation}", flush=True)
    accuracy = test(model, test_set)
    print(f"test accuracy {accuracy:.2%} on {len(test_set[0])} test digits")
    return model, accuracy


def integrate_gradients(net: nn.Module, test_images: Tensor, output_digit: int | Tensor, steps_m: int) -> Tensor:
    """Compute Integrated Gradients with the black baseline x' = 0 and the right sum over k/m, k = 1..m.

    Args:
        net: The CNN, in eval mode.
        test_images: Images x (N, 1, 28, 28).
        output_digit: The output F to explain: one digit, or one per image (N,).
        steps_m: The number of steps m; the m points of one image go through `net` as one batch.

    Returns:
        The attributions (N, 1, 28, 28); for an empty batch (0, 1, 28, 28), none.

    Raises:
        ValueError: `net` is in training mode.
    """
    from iml.validation import check_ig

    check_ig(net, test_images, output_digit, steps_m, "integrate_gradients", "test_images")
    if net.training:
        raise ValueError(f"{type(net).__name__} is in training mode; call model.eval() first")
    # TODO: sum dF/dx at the m points x' + k/m (x - x'), k = 1..m (torch.autograd.grad), times (x - x') / m
    ### BEGIN SOLUTION
    digits = torch.as_tensor(output_digit).expand(len(test_images))  # (N,)
    baseline = torch.zeros_like(test_images)  # x' (N, 1, 28, 28)
    k = torch.arange(1, steps_m + 1, dtype=test_images.dtype, device=test_images.device).view(-1, 1, 1, 1)
    attributions = torch.empty_like(test_images)
    for i, (x, x_base) in enumerate(zip(test_images, baseline)):  # one image x (1, 28, 28)
        path = (x_base + k / steps_m * (x - x_base)).requires_grad_()  # x' + k/m (x - x'), (m, 1, 28, 28)
        outputs = net(path)[:, digits[i]]  # F at every point (m,)
        (gradients,) = torch.autograd.grad(outputs.sum(), path)  # dF/dx at every point (m, 1, 28, 28)
        attributions[i] = (x - x_base) * (1 / steps_m) * gradients.sum(0)  # (1, 28, 28)
    return attributions
    ### END SOLUTION


def plot_attributions(
    images: Tensor, attributions: Tensor, labels: Tensor, title: str, per_class: int | None = None
) -> "Figure":
    """Draw each digit beside its attribution, a group per class 0-9, on one colour scale centred at zero.

    Args:
        images: Images (N, 1, 28, 28) in [0, 1].
        attributions: Their attributions (N, 1, 28, 28).
        labels: The digit each was explained as (N,).
        title: What and on which data.
        per_class: Digits drawn per class (default: all given, at most 6); a class without any is named.

    Returns:
        The figure.
    """
    from iml.integrated_plots import plot_attribution_grid

    return plot_attribution_grid(images, attributions, labels, title, per_class)


def plot_class_means(attributions: Tensor, labels: Tensor, title: str) -> "Figure":
    """Draw the mean attribution of each class on one colour scale centred at zero.

    Args:
        attributions: Attributions (N, 1, 28, 28).
        labels: The digit each was explained as (N,).
        title: What and on which data.

    Returns:
        The figure.
    """
    from iml.integrated_plots import plot_mean_attributions

    return plot_mean_attributions(attributions, labels, title)


def build_parser() -> argparse.ArgumentParser:
    """Build the command line: the options of IG here, those of the weights and the training in iml.

    Returns:
        The parser.
    """
    from iml.cli import int_range
    from iml.mnist_cnn import add_training_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int_range(1, 1000), default=2, help="digits per class, 1-1000 (default: 2)")
    parser.add_argument("--steps", type=int_range(1, 2000), default=100, help="steps m, 1-2000 (default: 100)")
    parser.add_argument("--fast", action="store_true", help="run iml's chunked twin (default: off)")
    parser.add_argument("--compile", action="store_true", help="with --fast: torch.compile it (default: off)")
    add_training_arguments(parser)  # --weights, --retrain, --train-only, --epochs, ..., --seed, --device, --out
    return parser


def run(args: argparse.Namespace) -> None:
    """Train or load the CNN, test it, explain --per-class test digits of each class and draw them.

    Args:
        args: The command line's options.
    """
    from iml.attribution import attribute_in_chunks, completeness_gap
    from iml.common import relative
    from iml.mnist_cnn import get_model, load_test_digits, prepare
    from iml.outputs import write_figures

    device = prepare(args)  # outputs checked before any work, the device chosen, the seed set
    model, test_set = get_model(args, device, train_model), load_test_digits(device)  # trains when asked or missing
    print(f"test accuracy {test(model, test_set):.2%} on {len(test_set[1])} test digits")
    if args.train_only:
        return
    index = torch.cat([torch.nonzero(test_set[1] == d).flatten()[: args.per_class] for d in range(10)])
    x, digits = test_set[0][index], test_set[1][index]  # (N, 1, 28, 28), (N,): each explained for its label
    if args.fast:  # the same numbers from iml's chunked twin, faster
        from iml.integrated_fast import fast_twin
    ig = fast_twin(args.compile) if args.fast else integrate_gradients
    attributions = attribute_in_chunks(ig, model, x, digits, args.steps)  # (N, 1, 28, 28), a bar counts the digits
    gap = completeness_gap(model, x, attributions, digits).abs()  # |sum_i attributions_i - (F(x) - F(x'))|, (N,)
    print(f"completeness gap |sum of attributions - (F(x) - F(x'))|: median {gap.median():.1e}, max {gap.max():.1e}")
    title = f"({len(x)} MNIST test digits, x' = 0, m = {args.steps})"
    x, digits, attributions = x.cpu(), digits.cpu(), attributions.cpu()
    figures = {
        "ig_attributions.png": plot_attributions(x, attributions, digits, f"Integrated Gradients {title}"),
        "ig_class_means.png": plot_class_means(attributions, digits, f"Mean attribution per digit {title}"),
    }
    print("\n".join(f"wrote {relative(path)}" for path in write_figures(figures, args.out, "mnist_integrated")))
    print("further: python -m iml ig --help; python -m iml ig-checks; python -m iml ig-exact")


def main() -> None:
    """Run Task 2 from the command line; an error a user can cause ends in one line."""
    from iml.cli import run_main

    run_main(lambda: run(build_parser().parse_args()))


if __name__ == "__main__":
    main()
