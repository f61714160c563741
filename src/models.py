"""The exercise's MNIST CNN and its checkpoint format.

A checkpoint is a dict that `torch.load(path, weights_only=True)` accepts:
{"model": state_dict, "config": {training options}, "test_accuracy": float, "format": 1}.
This module depends on torch alone; writing files atomically is the caller's job (common.atomic_path).
"""

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A weights file that cannot be used: `path` names it, `reason` says why ("does not exist", ...)."""

    def __init__(self, path, reason):
        super().__init__(f"weights file {path} {reason}")
        self.path, self.reason = path, reason


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
        """Logits (N, 10) for pixels x (N, 1, 28, 28) in [0, 1]."""
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
    """Write `model`'s weights, the training `config` and the test accuracy (a fraction) to `path`.

    To keep a good file safe from an interrupted save, pass a temporary path and rename it
    afterwards (common.atomic_path does both).
    """
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dict(config),
        "test_accuracy": float(test_accuracy),
    }
    torch.save(checkpoint, path)


def load_checkpoint(path):
    """The checkpoint dict in `path`, loaded without running any code (`weights_only=True`).

    A bare state dict, as the original exercise saved it, is wrapped into the dict format.
    Raises CheckpointError for a missing, truncated, unsafe or foreign file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "does not exist")
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a file")
    # torch.save writes a zip archive; anything else is a truncated download or another format
    if not zipfile.is_zipfile(path):
        raise CheckpointError(path, "is truncated or not a PyTorch checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        culprit = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "unsafe content")
        reason = f"was refused by the safe loader because it would run code ({culprit.rstrip('.')})"
        raise CheckpointError(path, reason) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise CheckpointError(path, f"is truncated or not a PyTorch checkpoint ({type(error).__name__})") from None
    if not (isinstance(checkpoint, dict) and "model" in checkpoint):
        checkpoint = {"model": checkpoint, "config": {}, "test_accuracy": float("nan")}
    if not isinstance(checkpoint["model"], dict):
        raise CheckpointError(path, "holds no state dict")
    return checkpoint


def load_cnn(path, device="cpu"):
    """A `CNN` in eval mode on `device` with the weights from `path`.

    Raises CheckpointError as `load_checkpoint` does, and for weights of another network.
    """
    checkpoint = load_checkpoint(path)
    model = CNN()
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, TypeError, AttributeError):
        raise CheckpointError(path, "belongs to another network, not this CNN") from None
    return model.to(device).eval()
