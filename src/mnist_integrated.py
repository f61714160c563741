"""Task 2: train the MNIST digit CNN, then explain its decisions with Integrated Gradients.

    python src/mnist_integrated.py                      # load data/weights.pth (train if missing), explain
    python src/mnist_integrated.py --retrain            # train anew, replace data/weights.pth, explain
    python src/mnist_integrated.py --retrain --val-size 0 --epochs 4 --train-only   # the shipped weights
    sbatch scripts/integrated_gradients.slurm           # the same on a SLURM GPU node

Training holds out `--val-size` training digits for validation (reported every epoch); the test
accuracy on the 10,000 test digits is measured once at the end and stored in the checkpoint.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models import CNN, load_cnn, save_checkpoint
from util import (
    WEIGHTS_PATH,
    UserError,
    add_common_arguments,
    get_device,
    get_mnist_test_data,
    get_mnist_train_data,
    non_negative_int,
    positive_float,
    positive_int,
    relative,
    run_main,
    set_seed,
)


def to_float_images(images_uint8, device):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] on `device`."""
    return images_uint8.to(device).unsqueeze(1).float().div_(255)


def batches(images, labels, batch_size, shuffle=False, generator=None):
    """Yield (images, labels) mini-batches from tensors already on the device.

    Slicing tensors in place is much faster than a DataLoader over single items, and on a GPU
    it keeps the whole epoch on the card.
    """
    n = len(images)
    order = torch.randperm(n, generator=generator).to(images.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield images[index], labels[index]


def train(args, model, images, labels, optimizer, scheduler, epoch, generator):
    """One epoch of cross-entropy training; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    steps = math.ceil(len(images) / args.batch_size)
    progress = tqdm(
        batches(images, labels, args.batch_size, shuffle=True, generator=generator),
        total=steps,
        desc=f"epoch {epoch}/{args.epochs}",
        leave=False,
        file=sys.stderr,
    )
    for batch, (x, y) in enumerate(progress):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            raise UserError(
                f"training diverged: the loss became {loss.item()} in epoch {epoch}, batch {batch}; "
                f"lower --lr (now {args.lr}); no weights were written."
            )
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        if batch % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
    return total / count


@torch.no_grad()
def test(model, images, labels, batch_size=1000):
    """Accuracy of `model` on float images (N, 1, 28, 28) and int64 labels."""
    model.eval()
    correct = 0
    for x, y in batches(images, labels, batch_size):
        correct += (model(x).argmax(dim=1) == y).sum().item()
    return correct / len(images)


def train_model(args, device):
    """Train a fresh CNN as configured by `args`; returns (model, test accuracy, seconds)."""
    set_seed(args.seed)
    train_images, train_labels = get_mnist_train_data()
    test_images, test_labels = get_mnist_test_data()
    if args.val_size >= len(train_images):
        raise UserError(f"--val-size {args.val_size} leaves no training digits; use fewer than {len(train_images)}.")
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_images), generator=generator)
    train_index, val_index = order[args.val_size :], order[: args.val_size]
    if args.train_size:
        train_index = train_index[: args.train_size]
    x_train = to_float_images(train_images[train_index], device)
    y_train = train_labels[train_index].to(device)
    x_val = to_float_images(train_images[val_index], device)
    y_val = train_labels[val_index].to(device)
    x_test, y_test = to_float_images(test_images, device), test_labels.to(device)

    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # One-cycle: warm up, then anneal to ~0, which reaches 99% on MNIST in a few epochs.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=math.ceil(len(x_train) / args.batch_size)
    )
    print(
        f"training on {len(x_train)} digits, validating on {len(x_val)}, device {device}, "
        f"{args.epochs} epochs, batch size {args.batch_size}, lr {args.lr}"
    )
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = train(args, model, x_train, y_train, optimizer, scheduler, epoch, generator)
        message = f"epoch {epoch}: training loss {loss:.4f}"
        if len(x_val):
            message += f", validation accuracy {test(model, x_val, y_val):.2%}"
        print(message, flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    accuracy = test(model, x_test, y_test)
    print(f"test accuracy {accuracy:.2%} on {len(x_test)} test digits after {seconds:.1f} s of training")
    return model, accuracy, seconds


def training_config(args):
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "val_size": args.val_size,
        "train_size": args.train_size,
    }


def get_model(args, device):
    """Load the weights, or train and save them when asked (`--retrain`) or when they are missing."""
    if args.retrain or not args.weights.exists():
        if not args.retrain:
            print(f"{relative(args.weights)} not found: training a new network.")
        model, accuracy, _ = train_model(args, device)
        save_checkpoint(args.weights, model, training_config(args), accuracy)
        print(f"saved {relative(args.weights)}")
        return model
    return load_cnn(args.weights, device)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    training = parser.add_argument_group("training (used with --retrain or when the weights file is missing)")
    parser.add_argument(
        "--weights",
        type=Path,
        default=WEIGHTS_PATH,
        help=f"checkpoint to load, or to write when training (default: {relative(WEIGHTS_PATH)})",
    )
    parser.add_argument("--retrain", action="store_true", help="train anew and replace the weights file (default: off)")
    parser.add_argument(
        "--train-only", action="store_true", help="stop after training or loading and testing (default: off)"
    )
    training.add_argument("--epochs", type=positive_int, default=4, help="training epochs (default: 4)")
    training.add_argument("--batch-size", type=positive_int, default=128, help="training batch size (default: 128)")
    training.add_argument("--lr", type=positive_float, default=3e-3, help="peak Adam learning rate (default: 0.003)")
    training.add_argument(
        "--val-size",
        type=non_negative_int,
        default=5000,
        help="training digits held out for validation; 0 trains on all 60,000 (default: 5000)",
    )
    training.add_argument(
        "--train-size",
        type=non_negative_int,
        default=0,
        help="use only this many training digits, 0 for all (default: 0)",
    )
    add_common_arguments(parser)
    return parser


def main():
    args = build_parser().parse_args()
    device = get_device(args.device)
    model = get_model(args, device)
    if args.train_only:
        if not args.retrain:
            test_images, test_labels = get_mnist_test_data()
            accuracy = test(model, to_float_images(test_images, device), test_labels.to(device))
            print(f"test accuracy {accuracy:.2%} on {len(test_images)} test digits")
        return


if __name__ == "__main__":
    run_main(main)
