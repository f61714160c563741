"""Define the exercise's MNIST CNN and its checkpoint, which is loaded without running code.

A checkpoint is a dict {"model": state_dict, "config": options, "test_accuracy": float, "format": 1}.
"""

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CHECKPOINT_FORMAT = 1
MAX_CHECKPOINT_BYTES, MAX_PICKLE_BYTES = 64 * 2**20, 2**20  # the CNN's weights take 1.6 MB, their pickle 1 KB


class CheckpointError(ValueError):
    """A weights file that cannot be used: CheckpointError(path, reason), e.g. reason "does not exist"."""

    path = property(lambda self: self.args[0])
    reason = property(lambda self: self.args[1])

    def __str__(self) -> str:
        """Say "weights file PATH REASON".

        Returns:
            The message.
        """
        return f"weights file {self.path} {self.reason}"


class CNN(nn.Module):
    """Classify digits: pixels in [0, 1] of shape (N, 1, 28, 28) -> logits (N, 10)."""

    def __init__(self) -> None:
        """Build three convolutions and two linear layers."""
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
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1152, 256), nn.ReLU(), nn.Linear(256, 10))  # (N, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the logits; the input is standardized here, so that a black image is all zeros (IG's baseline).

        Args:
            x: Pixels (N, 1, 28, 28) in [0, 1].

        Returns:
            The logits (N, 10).
        """
        from iml.validation import check_images  # uint8 pixels would pass the standardization unnoticed

        return self.classifier(self.features((check_images(x, "CNN", "x") - MNIST_MEAN) / MNIST_STD))


def functional_state(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Detach the parameters and buffers of `module` for torch.func.functional_call.

    Args:
        module: The network.

    Returns:
        (parameters, buffers) by name; convolution weights channels-last, twice as fast on a CPU here.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    params = {n: p.contiguous(memory_format=torch.channels_last) if p.dim() == 4 else p for n, p in params.items()}
    return params, {name: b.detach() for name, b in module.named_buffers()}


def save_checkpoint(path: str | Path, model: nn.Module, config: dict[str, Any], test_accuracy: float) -> None:
    """Write the weights, options and test accuracy; what load_cnn would refuse is refused here first.

    Args:
        path: Where to write.
        model: The trained network.
        config: The training options.
        test_accuracy: A fraction from 0 to 1, or NaN where it was not measured.
    """
    from iml.checkpoint_files import check_checkpoint_parts
    from iml.common import atomic_path

    check_checkpoint_parts(path, model, config, test_accuracy, CNN)  # what load_cnn would refuse is not written
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = dict(format=CHECKPOINT_FORMAT, model=weights, config=config, test_accuracy=float(test_accuracy))
    with atomic_path(path) as tmp:  # written beside it and renamed: an earlier file stays whole until then
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running any code (`weights_only=True`); a bare state dict is wrapped.

    Before torch reads a byte, iml.checkpoint_files.checkpoint_problem checks the file's type and zip directory.

    Args:
        path: The weights file.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: A missing, unreadable, truncated, oversized, unsafe or foreign file.
    """
    from iml.checkpoint_files import NOT_A_CHECKPOINT, checkpoint_path, checkpoint_problem, refusal_reason

    path = checkpoint_path(path, "load_checkpoint")  # None or bytes: TypeError
    if (problem := checkpoint_problem(path, MAX_CHECKPOINT_BYTES, MAX_PICKLE_BYTES)) is not None:
        raise CheckpointError(path, problem)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # a tensor subclass, or a pickle that would call a function
        raise CheckpointError(path, refusal_reason(path, error)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise CheckpointError(path, f"{NOT_A_CHECKPOINT} ({type(error).__name__})") from None
    if not (isinstance(checkpoint, dict) and "model" in checkpoint):
        checkpoint = {"model": checkpoint, "config": {}, "test_accuracy": float("nan")}
    if not isinstance(checkpoint["model"], dict):
        raise CheckpointError(path, "holds no state dict")
    return checkpoint


def load_cnn(path: str | Path, device: str | torch.device = "cpu") -> CNN:
    """Load a `CNN` in eval mode with the weights from `path`.

    Args:
        path: The weights file.
        device: Where the network goes.

    Returns:
        The network.

    Raises:
        CheckpointError: As `load_checkpoint`, for another network's weights, and for NaN or Inf weights.
    """
    from iml.checkpoint_files import load_weights  # also takes the names of DataParallel and torch.compile
    from iml.validation import check_device

    device, checkpoint, model = check_device(device, "load_cnn"), load_checkpoint(path), CNN()
    if (problem := load_weights(model, checkpoint["model"], path)) is not None:  # another network's, NaN or Inf
        raise CheckpointError(path, problem)
    return model.to(device).eval()
