"""The exercise's MNIST CNN and its checkpoint format.

A checkpoint is a dict that `torch.load(path, weights_only=True)` accepts:
{"model": state_dict, "config": {training options}, "test_accuracy": float, "format": 1}.
A weights file is checked before torch reads it: it must be a regular file (a pipe would block
the reader forever) and a zip archive whose members unpack to a size this small CNN can need, so
that a tiny file cannot make torch.load allocate gigabytes. Writing files atomically is the
caller's job (common.atomic_path).
"""

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from iml.common import file_problem

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CHECKPOINT_FORMAT = 1
# The CNN's 390,410 float32 weights take 1.6 MB and the pickle that describes them about 1 KB;
# a checkpoint that unpacks to far more is not one of this network, and loading it could exhaust memory.
MAX_CHECKPOINT_BYTES = 64 * 2**20
MAX_PICKLE_BYTES = 2**20


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


def checkpoint_problem(path):
    """Why `path` cannot be a checkpoint of this CNN, judged without unpacking it, or None.

    Looks only at the file's type and the zip archive's table of contents: a folder, pipe, link
    loop or unreadable file, a file that is not a zip archive (torch.save writes one) and an
    archive whose members unpack to more than MAX_CHECKPOINT_BYTES (or whose pickle exceeds
    MAX_PICKLE_BYTES) each get their reason.
    """
    problem = file_problem(path)
    if problem is not None:
        return problem
    if not zipfile.is_zipfile(path):
        return "is truncated or not a PyTorch checkpoint"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return f"is truncated or not a PyTorch checkpoint ({type(error).__name__})"
    unpacked = sum(info.file_size for info in members)
    pickled = sum(info.file_size for info in members if info.filename.endswith(".pkl"))
    if unpacked > MAX_CHECKPOINT_BYTES:
        return (
            f"unpacks to {unpacked / 2**20:,.0f} MiB, far more than the 1.6 MB of this CNN's weights "
            f"(at most {MAX_CHECKPOINT_BYTES // 2**20} MiB is accepted)"
        )
    if pickled > MAX_PICKLE_BYTES:
        return (
            f"holds {pickled / 2**20:,.1f} MiB of pickle, far more than the 1 KB this CNN's checkpoint needs "
            f"(at most {MAX_PICKLE_BYTES // 2**20} MiB is accepted)"
        )
    return None


def load_checkpoint(path):
    """The checkpoint dict in `path`, loaded without running any code (`weights_only=True`).

    A bare state dict, as the original exercise saved it, is wrapped into the dict format.
    Raises CheckpointError for a missing, unreadable, truncated, oversized, unsafe or foreign file;
    `checkpoint_problem` is asked before torch reads a byte.
    """
    path = Path(path)
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(path, problem)
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


def first_non_finite(model):
    """The name of the first parameter or buffer of `model` that holds NaN or Inf, or None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def load_cnn(path, device="cpu"):
    """A `CNN` in eval mode on `device` with the weights from `path`.

    Raises CheckpointError as `load_checkpoint` does, for weights of another network, and for
    weights that hold NaN or Inf (they would give chance accuracy and NaN everywhere downstream).
    """
    checkpoint = load_checkpoint(path)
    model = CNN()
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, TypeError, AttributeError):
        raise CheckpointError(path, "belongs to another network, not this CNN") from None
    # checked after loading, when every tensor has this CNN's shape: a crafted view could be far larger
    if (name := first_non_finite(model)) is not None:
        raise CheckpointError(path, f"holds NaN or Inf in {name}")
    return model.to(device).eval()
