"""Checks of what the Python API is given, made before any work.

The exercise's functions (src/*.py) and the package's call these first, so that a wrong input stops
with one sentence instead of a silently wrong answer: integer pixels where floats are expected, a
missing batch dimension, channels first where channels last are expected, a float or a bool for a
count, a string for a baseline. A wrong type raises TypeError, a wrong value or shape ValueError.
Each message names the function and the argument, what it needs and what it got, and, where one
call turns the one into the other, that call:

    integrate_gradients needs test_images of shape (N, 1, 28, 28), got (28, 28); a single image (28, 28)
    becomes one with images.view(1, 1, 28, 28)

An empty batch is a batch: the IG functions return empty attributions (0, 1, 28, 28) for it.
"""

import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

MNIST = ("N", 1, 28, 28)  # the CNN's images; a name stands for any size, here the batch
PIXEL_TIP = "; pixels 0-255 become [0, 1] with images.float() / 255"
KINDS = {  # what a dtype must be, by the name messages use
    "floating-point": lambda dtype: dtype.is_floating_point,
    "integer": lambda dtype: not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool),
    "real": lambda dtype: not (dtype.is_complex or dtype == torch.bool),
}


def shape_text(shape):
    """("N", 1, 28, 28) -> "(N, 1, 28, 28)"; (5,) -> "(5,)"."""
    parts = [str(size) for size in shape]
    return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"


def describe(value):
    """What a message says was given: a tensor or array by dtype and shape, a number or string by value."""
    if torch.is_tensor(value):
        return f"a {value.dtype} tensor of shape {shape_text(tuple(value.shape))}"
    if isinstance(value, np.ndarray):
        return f"a numpy {value.dtype} array of shape {shape_text(value.shape)}"
    if isinstance(value, bool | np.bool_):
        return f"the bool {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, numbers.Number):
        return f"the {type(value).__name__} {value}"
    name = type(value).__name__
    return "None" if value is None else f"{'an' if name[0] in 'AEIOUaeiou' else 'a'} {name}"


def check_count(value, name, function, low=1, high=None):
    """Return `value` as an int: a whole number (an int or numpy integer, not a bool) of at least `low` and, where
    given, at most `high`."""
    needed = f"{function} needs {name} as a whole number from {low} up (an int)"
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{needed}, got {describe(value)}")
    if value < low:
        raise ValueError(f"{needed}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{function} needs {name} as a whole number from {low} to {high}, got {value}")
    return int(value)


def check_path(value, name, function, what="a path"):
    """Return `value` as a Path: a str or os.PathLike (not None, bytes, a bool or another number)."""
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike):
        raise TypeError(f"{function} needs {name} as {what} (a str or Path), got {describe(value)}")
    return Path(value)


def check_number(value, name, function, low=None, above=None, high=None):
    """Raise unless `value` is a finite real number (not a bool), at least `low` or above `above` where given, and
    at most `high` where given."""
    bound = f" of at least {low:g}" if low is not None else f" above {above:g}" if above is not None else ""
    bound += "" if high is None else f" and at most {high:g}" if bound else f" of at most {high:g}"
    needed = f"{function} needs {name} as a finite number{bound}"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{needed}, got {describe(value)}")
    too_low = (low is not None and value < low) or (above is not None and value <= above)
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        raise ValueError(f"{needed}, got {value:g}")


def check_flag(value, name, function):
    """Raise unless `value` is True or False (a string such as "no" would count as true)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{function} needs {name} as True or False, got {describe(value)}")


def check_choice(value, name, function, choices):
    """Raise unless `value` is one of the strings `choices`."""
    needed = f"{function} needs {name} as one of {', '.join(choices)}"
    if not isinstance(value, str):
        raise TypeError(f"{needed}, got {describe(value)}")
    if value not in choices:
        raise ValueError(f"{needed}, got {value!r}")


def check_tensor(value, name, function, shape=None, kind="floating-point", hint="", pixels=False):
    """Raise unless `value` is a torch tensor of dtype `kind` (see KINDS) and of `shape` (a name such as "N":
    any size there; shape None: any shape). `hint` ends the message of a wrong shape; `pixels`: integer ones are
    told how to become floats."""
    expected = f"a {kind} tensor" + ("" if shape is None else f" {shape_text(shape)}")
    if not torch.is_tensor(value):
        tip = "; torch.from_numpy(...) makes a tensor of an array" if isinstance(value, np.ndarray) else ""
        raise TypeError(f"{function} needs {name} as {expected}, got {describe(value)}{tip}")
    if not KINDS[kind](value.dtype):
        tip = PIXEL_TIP if pixels and KINDS["integer"](value.dtype) else ""
        raise TypeError(f"{function} needs {name} as {expected}, got {describe(value)}{tip}")
    if shape is not None and not fits(value.shape, shape):
        raise ValueError(f"{function} needs {name} of shape {shape_text(shape)}, got {shape_text(value.shape)}{hint}")
    return value


def fits(actual, shape):
    """True when `actual` has the rank of `shape` and its sizes wherever `shape` gives a number, not a name."""
    return len(actual) == len(shape) and all(isinstance(s, str) or s == a for s, a in zip(shape, actual))


def mnist_hint(shape):
    """How to turn a common wrong shape into (N, 1, 28, 28), or ""."""
    shape = tuple(shape)
    if shape == (28, 28):
        return "; a single image (28, 28) becomes one with images.view(1, 1, 28, 28)"
    if shape == (1, 28, 28):
        return "; a single image (1, 28, 28) becomes a batch of one with images[None]"
    if len(shape) == 3 and shape[1:] == (28, 28):
        return "; images (N, 28, 28) get their channel with images.unsqueeze(1)"
    if len(shape) == 4 and shape[1:] == (28, 28, 1):
        return "; channels last (N, 28, 28, 1) become channels first with images.permute(0, 3, 1, 2)"
    if len(shape) == 2 and shape[1] == 784:
        return "; flat images (N, 784) become (N, 1, 28, 28) with images.view(-1, 1, 28, 28)"
    return ""


def check_images(images, function, name="images"):
    """Return `images` if they are a batch of the CNN's images, a floating-point tensor (N, 1, 28, 28) (N may be 0);
    raise otherwise."""
    hint = mnist_hint(images.shape) if torch.is_tensor(images) else ""
    return check_tensor(images, name, function, MNIST, hint=hint, pixels=True)


def check_pixels(images, function, name="images"):
    """Raise unless every value of `images` lies in [0, 1], as MNIST pixels do."""
    if images.numel() and (images.min() < 0 or images.max() > 1):
        low, high = images.min().item(), images.max().item()
        tip = "; pixels 0-255 become [0, 1] with images / 255" if high > 1 and low >= 0 else ""
        raise ValueError(f"{function} needs {name} as pixels in [0, 1], got values from {low:g} to {high:g}{tip}")


def check_digits(output_digit, count, function, name="output_digit"):
    """Raise unless `output_digit` is one output index from 0 up (an int, a 0-d or (1,) integer tensor) or one
    per image, (count,)."""
    needed = f"{function} needs {name} as an output index from 0 up: an int, or an integer tensor ({count},)"
    try:
        digits = None if isinstance(output_digit, bool | str) else torch.as_tensor(output_digit)
    except (TypeError, ValueError, RuntimeError):
        digits = None
    if digits is None or not KINDS["integer"](digits.dtype):
        raise TypeError(f"{needed}, got {describe(output_digit)}")
    if digits.dim() > 1 or (digits.dim() == 1 and len(digits) not in (1, count)):
        raise ValueError(f"{needed}, one per image, got {shape_text(tuple(digits.shape))}")
    if digits.numel() and digits.min() < 0:
        raise ValueError(f"{needed}, got {digits.min().item()}")


def check_labels(labels, count, function, classes, name="labels"):
    """Raise unless `labels` are an integer tensor (count,) of values 0 to classes - 1."""
    needed = f"{function} needs {name} as an integer tensor ({count},) of classes 0 to {classes - 1}"
    if not torch.is_tensor(labels) or not KINDS["integer"](labels.dtype):
        raise TypeError(f"{needed}, got {describe(labels)}")
    if tuple(labels.shape) != (count,):
        raise ValueError(f"{needed}, got {shape_text(tuple(labels.shape))}")
    if count and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{needed}, got values from {labels.min().item()} to {labels.max().item()}")


def check_same_shape(value, name, reference, reference_name, function):
    """Raise unless `value` is a tensor of the shape of `reference`."""
    needed = f"{function} needs {name} of the shape of {reference_name} {shape_text(tuple(reference.shape))}"
    if not torch.is_tensor(value):
        raise TypeError(f"{needed}, got {describe(value)}")
    if value.shape != reference.shape:
        raise ValueError(f"{needed}, got {shape_text(tuple(value.shape))}")


def check_baseline(baseline, images, function):
    """Raise unless `baseline` is None (black), a number, or a real tensor or array that broadcasts to `images`."""
    needed = f"{function} needs baseline as None (black), a number or a tensor that broadcasts to images "
    needed += shape_text(tuple(images.shape))
    if baseline is None or (isinstance(baseline, numbers.Real) and not isinstance(baseline, bool | np.bool_)):
        return
    if isinstance(baseline, np.ndarray) and baseline.dtype.kind in "iuf":
        baseline = torch.from_numpy(baseline)
    if not (torch.is_tensor(baseline) and KINDS["real"](baseline.dtype)):
        named = isinstance(baseline, str) and baseline in ("black", "blur", "noise")
        tip = f"; make_baselines({baseline!r}, images) makes it" if named else ""
        raise TypeError(f"{needed}, got {describe(baseline)}{tip}")
    try:
        fits_images = torch.broadcast_shapes(baseline.shape, images.shape) == images.shape
    except RuntimeError:
        fits_images = False
    if not fits_images:
        raise ValueError(f"{needed}, got {shape_text(tuple(baseline.shape))}")


def check_network(net, function, name="net"):
    """Return `net` if it is a torch network (an nn.Module), such as the CNN that models.load_cnn returns."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{function} needs {name} as an nn.Module such as models.load_cnn's CNN, got {describe(net)}")
    return net


def check_ig(net, images, output_digit, steps_m, function, name="images"):
    """The arguments every IG function shares: the network, images (N, 1, 28, 28), output_digit and the number of
    steps m."""
    check_network(net, function)
    check_images(images, function, name)
    check_digits(output_digit, len(images), function)
    check_count(steps_m, "steps_m", function)


def check_forward_pass(x, neuron):
    """Input optimization's forward_pass(x, neuron): one image x (1, 28, 28) and a 0-d integer tensor.

    Only shapes and dtypes are read, so the check works under torch.func.vmap and grad.
    """
    hint = {(28, 28): "; one image (28, 28) becomes (1, 28, 28) with x[None]"}
    hint[1, 1, 28, 28] = "; forward_pass takes one image: x[0] of a batch (1, 1, 28, 28)"
    shape = tuple(x.shape) if torch.is_tensor(x) else ()
    check_tensor(x, "x", "forward_pass", (1, 28, 28), hint=hint.get(shape, ""), pixels=True)
    if not (torch.is_tensor(neuron) and KINDS["integer"](neuron.dtype) and neuron.dim() == 0):
        needed = "forward_pass needs neuron as a 0-d integer tensor such as torch.tensor(3)"
        raise TypeError(f"{needed}, got {describe(neuron)}")


def check_neurons(neurons, function):
    """Raise unless `neurons` are a non-empty sequence of output indices, ints from 0 up."""
    if isinstance(neurons, str) or not hasattr(neurons, "__len__"):
        raise TypeError(f"{function} needs neurons as a sequence of digits such as (3,), got {describe(neurons)}")
    if not len(neurons):
        raise ValueError(f"{function} needs at least one neuron, got none")
    for k, neuron in enumerate(neurons):
        check_count(neuron, f"neurons[{k}]", function, low=0)


def check_ascent(net, neurons, starts, steps, lr, function="optimize_input"):
    """Input optimization's arguments: the network, digits, starting images (1, 1, 28, 28) by name, Adam's steps
    and step size.

    Returns (S, K): the number of starts and of digits.
    """
    check_network(net, function)
    check_neurons(neurons, function)
    if not isinstance(starts, dict):
        raise TypeError(f"{function} needs starts as a dict of starting images by name, got {describe(starts)}")
    if not starts:
        raise ValueError(f"{function} needs at least one start, got none")
    for name, start in starts.items():
        hint = mnist_hint(start.shape) if torch.is_tensor(start) else ""
        check_tensor(start, f"the start image {name!r}", function, (1, 1, 28, 28), hint=hint, pixels=True)
    check_count(steps, "steps", function, low=0)
    check_number(lr, "lr", function, above=0)
    return len(starts), len(neurons)


def check_digit_data(model, data, function):
    """Task 2's network and data (images (N, 1, 28, 28) in [0, 1], labels (N,) of digits 0-9), with N at least 1."""
    check_network(model, function, "model")
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{function} needs data as a pair (images, labels), got {describe(data)}")
    images, labels = data
    check_images(images, function, "the images data[0]")
    if not len(images):
        raise ValueError(f"{function} needs at least one digit, got an empty data[0] (0, 1, 28, 28)")
    check_pixels(images, function, "the images data[0]")
    check_labels(labels, len(images), function, 10, "the labels data[1]")


def check_fractions(fractions, function, at_least=1):
    """Raise unless `fractions` are a floating-point tensor (F,) of at least `at_least` values in [0, 1],
    and, for an area under a curve over them (at_least 2), with the last above the first."""
    check_tensor(fractions, "fractions", function, ("F",))
    needed = f"{function} needs fractions of at least {at_least} values from 0 to 1"
    if len(fractions) < at_least or (len(fractions) and not (fractions.min() >= 0 and fractions.max() <= 1)):
        values = ", ".join(f"{value:g}" for value in fractions[:5].tolist()) + (", ..." if len(fractions) > 5 else "")
        tip = "; percentages p become p / 100" if len(fractions) and fractions.max() > 1 else ""
        raise ValueError(f"{needed}, got ({values}){tip}")
    if at_least > 1 and not fractions[-1] > fractions[0]:
        raise ValueError(f"{needed}, the last above the first, got {fractions[0]:g} to {fractions[-1]:g}")


def check_batch(batch, sample_shape, function, name="batch"):
    """Raise unless `batch` is a floating-point tensor of samples (n, ...), each of `sample_shape` where given
    (a batch that broadcast against the earlier ones would be merged silently wrong)."""
    check_tensor(batch, name, function, None if sample_shape is None else ("n", *sample_shape))
    if batch.dim() < 1:
        raise ValueError(f"{function} needs {name} of shape (n, ...), samples along the first axis, got ()")


def check_folder_split(folder, train_size, val_size, test_size, skip_unreadable, function="load_folder"):
    """util.load_folder's arguments: a folder path (str or Path), three sizes from 0 and a flag; returns the sizes
    as ints."""
    check_path(folder, "folder", function)
    sizes = {"train_size": train_size, "val_size": val_size, "test_size": test_size}
    counts = tuple(check_count(size, name, function, low=0) for name, size in sizes.items())
    check_flag(skip_unreadable, "skip_unreadable", function)
    return counts


def check_start(kind, generator, kinds, function="make_start"):
    """Input optimization's start: `kind` one of the strings `kinds`, and a torch.Generator or None."""
    check_choice(kind, "kind", function, kinds)
    if not (generator is None or isinstance(generator, torch.Generator)):
        tip = "; torch.Generator().manual_seed(seed) makes one of a seed" if isinstance(generator, int) else ""
        given = "a numpy.random.Generator" if hasattr(generator, "bit_generator") else describe(generator)
        raise TypeError(f"{function} needs generator as a torch.Generator or None, got {given}{tip}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"{function} needs generator on the CPU, where the start is drawn, got one on {generator.device}"
        )


def check_start_kinds(kinds, generator, choices, function="starting_images"):
    """Several starts: `kinds` a non-empty list or tuple of names from `choices`, and a generator as check_start."""
    if not isinstance(kinds, list | tuple) or not kinds:
        tip = f"; use ({kinds!r},) for one" if isinstance(kinds, str) else ""
        needed = f"{function} needs kinds as a non-empty list or tuple of names such as {choices}"
        if isinstance(kinds, list | tuple):
            raise ValueError(f"{needed}, got an empty {type(kinds).__name__}")
        raise TypeError(f"{needed}, got {describe(kinds)}{tip}")
    for kind in kinds:
        check_start(kind, generator, choices, function)


def check_device(device, function):
    """Return `device` as a torch.device: a torch.device or a name such as "cpu", "cuda:0" or "auto", of a device
    this machine has (common.get_device decides)."""
    from iml.common import InputError, get_device  # iml.common reads no checks of this module

    needed = f'{function} needs device as a torch.device or a name such as "cpu" or "cuda"'
    if not isinstance(device, torch.device | str):
        raise TypeError(f"{needed}, got {describe(device)}")
    try:
        return get_device(str(device))
    except InputError as error:
        raise ValueError(f"{function} cannot use device {str(device)!r}: {str(error).rstrip('.')}") from None
