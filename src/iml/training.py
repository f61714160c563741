"""Training the exercise's MNIST CNN (src/models.py): cross-entropy with Adam and a one-cycle
learning rate, on mini-batches sliced from tensors that stay on the device.

`python src/mnist_integrated.py --retrain` runs it; pytorch/examples' mnist/main.py has the same
shape: `train` one epoch, `evaluate` a split, `train_model` the whole run.
"""

import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from iml.common import synchronize
from models import CNN
from util import get_mnist_test_data, get_mnist_train_data


def to_float_images(images_uint8, device):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] on `device`."""
    return images_uint8.to(device).unsqueeze(1).float().div_(255)


def batches(images, labels, batch_size, shuffle=False, generator=None):
    """Yield (images, labels) mini-batches from tensors already on the device.

    Slicing tensors in place is much faster than a DataLoader over single items, and on a GPU
    it keeps the whole epoch on the card.
    """
    order = torch.randperm(len(images), generator=generator).to(images.device) if shuffle else None
    for start in range(0, len(images), batch_size):
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield images[index], labels[index]


def train(args, model, images, labels, optimizer, scheduler, epoch, generator):
    """One epoch of cross-entropy training; returns the mean training loss.

    Raises FloatingPointError when the loss stops being finite.
    """
    model.train()
    total, count = 0.0, 0
    progress = tqdm(
        batches(images, labels, args.batch_size, shuffle=True, generator=generator),
        total=math.ceil(len(images) / args.batch_size),
        desc=f"epoch {epoch}/{args.epochs}",
        leave=False,
    )
    for batch, (x, y) in enumerate(progress):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: the loss became {loss.item()} in epoch {epoch}, batch {batch}"
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
def evaluate(model, images, labels, batch_size=1000):
    """Accuracy (a fraction) of `model` on float images (N, 1, 28, 28) and int64 labels (N,)."""
    model.eval()
    correct = 0
    for x, y in batches(images, labels, batch_size):
        correct += (model(x).argmax(dim=1) == y).sum().item()
    return correct / len(images)


def make_optimizer(args, model, train_count):
    """(Adam, its one-cycle schedule) for `args.epochs` epochs over `train_count` digits in `args.batch_size` batches.

    One-cycle warms the learning rate up to `args.lr`, then anneals it to ~0, which reaches 99% on
    MNIST in a few epochs.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(train_count / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    return optimizer, scheduler


def train_model(args, train_set, val_set, test_set, device):
    """Train a fresh CNN on (images, labels) float tensors as configured by `args`.

    Prints the loss and validation accuracy per epoch; returns (model, test accuracy, seconds).
    """
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = train_set, val_set, test_set
    model = CNN().to(device)
    optimizer, scheduler = make_optimizer(args, model, len(x_train))
    print(
        f"training on {len(x_train)} digits, validating on {len(x_val)}, device {device}, "
        f"{args.epochs} epochs, batch size {args.batch_size}, lr {args.lr}"
    )
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = train(args, model, x_train, y_train, optimizer, scheduler, epoch, generator)
        message = f"epoch {epoch}: training loss {loss:.4f}"
        if len(x_val):
            message += f", validation accuracy {evaluate(model, x_val, y_val):.2%}"
        print(message, flush=True)
    synchronize(device)
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, x_test, y_test)
    print(f"test accuracy {accuracy:.2%} on {len(x_test)} test digits after {seconds:.1f} s of training")
    return model, accuracy, seconds


def mnist_splits(args, device):
    """(train, validation, test) as (float images (N, 1, 28, 28), labels (N,)) on `device`.

    The validation digits are a random `args.val_size` of the 60,000 training digits;
    `args.train_size` (0: all) caps the rest.
    """
    train_images, train_labels = get_mnist_train_data()
    test_images, test_labels = get_mnist_test_data()
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(args.seed))
    train_index, val_index = order[args.val_size :], order[: args.val_size]
    if args.train_size:
        train_index = train_index[: args.train_size]
    return tuple(
        (to_float_images(images[index], device), labels[index].to(device))
        for images, labels, index in (
            (train_images, train_labels, train_index),
            (train_images, train_labels, val_index),
            (test_images, test_labels, slice(None)),
        )
    )
