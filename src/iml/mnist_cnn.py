"""What the Task 2 script and the IG commands share around the CNN: test digits as float tensors,
predictions and accuracy, the weights file's checks and its safe saving, and the training options.

The training itself (one epoch, the test accuracy, Adam with a one-cycle learning rate) is the
exercise's and lives in src/mnist_integrated.py; nothing here imports that script.
"""

import os
import tempfile
from pathlib import Path

import torch

from iml.cli import (
    UserError,
    add_common_arguments,
    check_output_folder,
    device_from_argument,
    int_range,
    learning_rate,
    path_argument,
    similar_file,
)
from iml.common import WEIGHTS_PATH, printable, relative, set_seed
from iml.validation import check_count, check_images, check_labels, check_network
from models import load_cnn, save_checkpoint
from util import get_mnist_test_data, get_mnist_train_data

SCRIPT = "python src/mnist_integrated.py"
RETRAINED_PATH = WEIGHTS_PATH.with_name("weights_retrained.pth")


def to_float_images(images_uint8, device):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] on `device`."""
    return images_uint8.to(device).unsqueeze(1).float().div_(255)


def load_test_digits(device):
    """The 10,000 MNIST test digits as (float images (N, 1, 28, 28), int64 labels (N,)), both on `device`."""
    images, labels = get_mnist_test_data()
    return to_float_images(images, device), labels.to(device)


def mnist_splits(args, device):
    """(train, validation, test) as (float images (N, 1, 28, 28), labels (N,)) on `device`.

    The validation digits are a random `args.val_size` of the 60,000 training digits (drawn with
    `args.seed`); `args.train_size` (0: all) caps the rest.
    """
    images, labels = get_mnist_train_data()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    train_index, val_index = order[args.val_size :], order[: args.val_size]
    if args.train_size:
        train_index = train_index[: args.train_size]
    splits = [(to_float_images(images[i], device), labels[i].to(device)) for i in (train_index, val_index)]
    return (*splits, load_test_digits(device))


@torch.no_grad()
def predict(model, images, batch_size=1000):
    """The predicted digit of each image (N,), in eval mode, `batch_size` images at a time."""
    check_network(model, "predict", "model")
    check_images(images, "predict")
    check_count(batch_size, "batch_size", "predict")
    model.eval()
    return torch.cat([model(x).argmax(dim=1) for x in images.split(batch_size)])


def evaluate(model, images, labels, batch_size=1000):
    """Accuracy (a fraction) of `model` on float images (N, 1, 28, 28) and int64 labels (N,), N at least 1."""
    check_network(model, "evaluate", "model")
    check_images(images, "evaluate")
    check_labels(labels, len(images), "evaluate", 10)
    if not len(images):
        raise ValueError("evaluate needs at least one digit, got none")
    return (predict(model, images, batch_size) == labels.to(images.device)).float().mean().item()


def add_training_arguments(parser):
    """The Task 2 script's options for its weights file and its training, and --seed, --device, --out."""
    parser.add_argument(
        "--weights",
        type=path_argument,
        default=None,
        help=f"checkpoint to load, or to write when training (default: {relative(WEIGHTS_PATH)}, the shipped "
        f"weights; with --retrain, {relative(RETRAINED_PATH)}, so that the shipped file stays as it is)",
    )
    parser.add_argument("--retrain", action="store_true", help="train anew and write the weights file (default: off)")
    parser.add_argument(
        "--train-only", action="store_true", help="stop after training or loading and testing (default: off)"
    )
    group = parser.add_argument_group("training (used with --retrain or when the weights file is missing)")
    group.add_argument("--epochs", type=int_range(1, 1000), default=4, help="training epochs, 1-1000 (default: 4)")
    group.add_argument(
        "--batch-size", type=int_range(1, 60_000), default=128, help="training batch size, 1-60000 (default: 128)"
    )
    group.add_argument(
        "--lr", type=learning_rate, default=3e-3, help="peak Adam learning rate, above 0 to 1 (default: 0.003)"
    )
    group.add_argument(
        "--val-size",
        type=int_range(0, 59_999),
        default=5000,
        help="training digits held out for validation, 0-59999; 0 trains on all 60,000 (default: 5000)",
    )
    group.add_argument(
        "--train-size",
        type=int_range(0, 60_000),
        default=0,
        help="use only this many training digits, 0-60000, 0 for all (default: 0)",
    )
    add_common_arguments(parser, "mnist_integrated")


def prepare(args):
    """Choose the weights file (`weights_path`), check the outputs before any work (`check_outputs`) and set
    the seed; returns the device of --device."""
    args.weights = weights_path(args.weights, args.retrain)
    check_outputs(args)
    device = device_from_argument(args.device)
    set_seed(args.seed)
    return device


def weights_path(given, retrain):
    """The weights file to use: `given` (--weights) when set; else the shipped data/weights.pth, or with
    `retrain` data/weights_retrained.pth beside it, so that retraining never replaces the shipped file
    unless --weights names it."""
    if given is not None:
        return given
    return RETRAINED_PATH if retrain else WEIGHTS_PATH


def check_outputs(args):
    """Refuse, before any work, an --out folder or a weights file that could not be written (UserError)."""
    check_output_folder(args.out)
    if args.weights.is_dir():
        raise UserError(
            f"--weights {relative(args.weights)} is a folder; name the weights file, e.g. {relative(WEIGHTS_PATH)}."
        )
    if args.retrain and (refusal := link_refusal(args.weights)) is not None:
        raise refusal
    if args.retrain or not (args.weights.exists() or args.weights.is_symlink()):
        check_output_folder(args.weights.parent, flag="the folder of --weights")


def must_train(weights, retrain):
    """Whether the script trains: with `retrain`, or when `weights` is missing (it says so).

    A missing file beside one whose name is a typo away is a UserError that names both; a broken
    link counts as present, so that loading reports it.
    """
    if retrain:
        return True
    if weights.exists() or weights.is_symlink():
        return False
    if (near := similar_file(weights)) is not None:
        raise UserError(
            f"--weights {relative(weights)} does not exist, but {relative(near)} does; pass --weights "
            f"{relative(near)}, or add --retrain to train a new network into {relative(weights)}."
        )
    print(f"{relative(weights)} not found: training a new network.")
    return True


def get_model(args, device, train_model):
    """The CNN in eval mode: loaded from args.weights, or trained by `train_model(args, train, val, test)`
    (the script's, which returns (model, test accuracy)) and saved, with --retrain or when the file is missing.

    A loss that stops being finite ends in a UserError that says to lower --lr; nothing is written then.
    """
    if not must_train(args.weights, args.retrain):
        return load_cnn(args.weights, device)
    try:
        model, accuracy = train_model(args, *mnist_splits(args, device))
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr (now {args.lr}); no weights were written.") from None
    config = {name: getattr(args, name) for name in ("epochs", "batch_size", "lr", "seed", "val_size", "train_size")}
    save_trained(model, config, accuracy, args.weights)
    return model.eval()


def link_refusal(path):
    """The UserError for a weights file to be written that is a symbolic link, or None: writing would
    either replace the link or overwrite the file it points to, which may be shared."""
    if not Path(path).is_symlink():
        return None
    return UserError(
        f"--weights {relative(path)} is a symbolic link to {printable(os.readlink(path))}; a trained network "
        "is not written through a link nor over it: remove the link, or pass --weights with another file name."
    )


def save_trained(model, config, accuracy, path):
    """Save the checkpoint to `path`; if that fails (a full disk, a folder made read-only meanwhile, a
    symbolic link put there meanwhile, which is neither followed nor replaced), save it in the temporary
    folder instead and raise UserError saying where, so the training is not lost."""
    reason = "it is a symbolic link now" if Path(path).is_symlink() else None
    if reason is None:
        try:
            save_checkpoint(path, model, config, accuracy)  # through a temporary file, renamed into place
        except OSError as error:
            reason = error.strerror
    if reason is not None:
        rescue = Path(tempfile.gettempdir()) / f"{path.stem}.rescued-{os.getpid()}{path.suffix}"
        save_checkpoint(rescue, model, config, accuracy)
        raise UserError(
            f"could not write {relative(path)} ({reason}); the trained network was saved to "
            f"{relative(rescue)} instead: move it there, or pass --weights {relative(rescue)}."
        ) from None
    kept = f" (the shipped {relative(WEIGHTS_PATH)} is unchanged; --weights {relative(path)} uses it)"
    print(f"saved {relative(path)}{kept if os.path.abspath(path) == str(RETRAINED_PATH) else ''}")


def load_trained(path, device):
    """The CNN with the weights in `path` for a command; a missing file names the script that trains it."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        weights = "" if path.resolve() == WEIGHTS_PATH else f" --weights {relative(path)}"
        raise UserError(
            f"weights file {relative(path)} does not exist; run `{SCRIPT}{weights}` first, which trains and saves it."
        )
    return load_cnn(path, device)
