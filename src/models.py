"""The exercise's MNIST CNN and its checkpoint format.

A checkpoint is a dict that `torch.load(path, weights_only=True)` accepts:
{"model": state_dict, "config": {training options}, "test_accuracy": float, "format": 1}.
"""

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from util import WEIGHTS_PATH, UserError, atomic_path, relative

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CHECKPOINT_FORMAT = 1
RETRAIN_COMMAND = "python src/mnist_integrated.py --retrain"


class CNN(nn.Module):
    """Digit classifier on pixels in [0, 1], shape (N, 1, 28, 28) -> logits (N, 10).

    The input is standardised inside `forward`, so a black image really is all zeros: that is the
    baseline of Integrated Gradients and the pixel space that input optimisation works in.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),  # (N, 32, 26, 26)
            nn.ReLU(),
            nn.AvgPool2d(2),  # (N, 32, 13, 13)
            nn.Conv2d(32, 64, 3),  # (N, 64, 11, 11)
            nn.ReLU(),
            nn.AvgPool2d(2),  # (N, 64, 5, 5)
            nn.Conv2d(64, 128, 3),  # (N, 128, 3, 3)
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (N, 1152)
            nn.Linear(1152, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )

    def forward(self, x):
        x = (x - MNIST_MEAN) / MNIST_STD
        return self.classifier(self.features(x))


def functional_state(module):
    """(parameters, buffers) of `module`, detached, for torch.func.functional_call.

    Convolution weights are stored channels-last, which lets oneDNN (CPU) and cuDNN use their
    fastest layout: the same numbers, about twice as fast on a CPU for these small images.
    """
    params = {
        name: p.detach().contiguous(memory_format=torch.channels_last) if p.dim() == 4 else p.detach()
        for name, p in module.named_parameters()
    }
    return params, {name: b.detach() for name, b in module.named_buffers()}


def save_checkpoint(path, model, config, test_accuracy):
    """Write a checkpoint atomically: an interrupted save never replaces a good file."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model": state,
        "config": dict(config),
        "test_accuracy": float(test_accuracy),
    }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path):
    """Load a checkpoint dict safely; every way it can be broken becomes one UserError sentence."""
    path = Path(path)
    name = relative(path)
    command = RETRAIN_COMMAND if path.resolve() == WEIGHTS_PATH else f"{RETRAIN_COMMAND} --weights {name}"
    how = f"recreate it with `{command}`"
    if not path.exists():
        raise UserError(f"weights file {name} does not exist; {how}.")
    if path.is_dir():
        raise UserError(f"weights file {name} is a folder, not a file; {how}.")
    # torch.save writes a zip archive; anything else is a truncated download or another format
    if not zipfile.is_zipfile(path):
        raise UserError(f"weights file {name} is truncated or not a PyTorch checkpoint; {how}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        culprit = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "unsafe content").rstrip(
            "."
        )
        raise UserError(
            f"weights file {name} was refused by the safe loader because it would run code ({culprit}); {how}."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise UserError(
            f"weights file {name} is truncated or not a PyTorch checkpoint ({type(error).__name__}); {how}."
        ) from None
    if isinstance(checkpoint, dict) and "model" in checkpoint:
        state = checkpoint["model"]
    else:
        state = checkpoint  # a bare state dict, as saved by the original exercise
        checkpoint = {"model": state, "config": {}, "test_accuracy": float("nan")}
    if not isinstance(state, dict):
        raise UserError(f"weights file {name} holds no state dict; {how}.")
    return checkpoint


def load_cnn(path, device="cpu"):
    """A `CNN` in eval mode with the weights from `path`; a foreign checkpoint is a UserError."""
    checkpoint = load_checkpoint(path)
    model = CNN()
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, TypeError, AttributeError):
        raise UserError(
            f"weights file {relative(path)} belongs to another network, not this CNN; "
            f"recreate it with `{RETRAIN_COMMAND}`."
        ) from None
    return model.to(device).eval()
