"""Checks of what Task 3's functions are given: images channels last, spectra channels first, the
classifier's data and options, as iml.validation does for the rest.

    transform needs image_data of shape (..., H, W, C), channels last with 1 to 4 channels, got
    (3, 128, 128); channels first (..., C, H, W) become channels last with np.moveaxis(image_data, -3, -1), ...
"""

import math

import numpy as np
import torch
from torch import nn

from iml.validation import (
    KINDS,
    check_choice,
    check_count,
    check_device,
    check_flag,
    check_labels,
    check_number,
    check_path,
    check_tensor,
    describe,
    shape_text,
)

FINITE_CHUNK = 2**24  # values per slice of check_values: a 16 MiB mask at most
MAX_CHANNELS = 4  # grey, RGB or RGBA: a longer last axis is a width, not the channels of channels-last images
NUMPY_KINDS = {"floating-point": "f", "integer": "iu", "real": "iuf"}


def check_channels_last(images, function, name="images", batched=True, numpy=False):
    """Raise unless `images` are integer or float pixels (N, H, W, C), channels last with C from 1 to
    MAX_CHANNELS; batched=False also takes (..., H, W, C). numpy: an array, else a torch tensor."""
    library = "numpy array" if numpy else "tensor"
    expected = "(N, H, W, C)" if batched else "(..., H, W, C)"
    needed = f"{function} needs {name} as a {library} {expected} of integer or float pixels"
    is_right_type = isinstance(images, np.ndarray) if numpy else torch.is_tensor(images)
    if not is_right_type:
        tip = "; tensor.numpy() makes an array of a tensor" if torch.is_tensor(images) else ""
        raise TypeError(f"{needed}, got {describe(images)}{tip}")
    if not (images.dtype.kind in NUMPY_KINDS["real"] if numpy else KINDS["real"](images.dtype)):
        raise TypeError(f"{needed}, got {describe(images)}")
    shape = tuple(images.shape)
    few = [1 <= size <= MAX_CHANNELS for size in shape]  # which axes could hold the channels
    if (len(shape) == 4 if batched else len(shape) >= 3) and few[-1]:
        return
    move = f"np.moveaxis({name}, -3, -1)" if numpy else f"{name}.movedim(-3, -1)"
    first = f"channels first (..., C, H, W) become channels last with {move}"
    grey = f"grey images (N, H, W) become (N, H, W, 1) with {name}[..., None]"
    hint = ""
    if len(shape) == 2:
        hint = f"; a grey image (H, W) becomes one with {name}[..., None]"
    elif len(shape) == 3 and batched and few[-1]:
        hint = f"; a single image (H, W, C) becomes a batch with {name}[None]"
    elif len(shape) == 3:  # (C, H, W) or a batch of grey images (N, H, W): both read alike
        hint = f"; {first}, {grey}" if few[0] else f"; {grey}"
    elif len(shape) > 3 and few[-3]:
        hint = f"; {first}"
    layout = f"channels last with 1 to {MAX_CHANNELS} channels"
    raise ValueError(f"{function} needs {name} of shape {expected}, {layout}, got {shape_text(shape)}{hint}")


def check_channels_first(spectra, function, name="spectra", kind="floating-point"):
    """Raise unless `spectra` are a tensor (N, C, H, W), channels first with C from 1 to MAX_CHANNELS."""
    shape = tuple(spectra.shape) if torch.is_tensor(spectra) else ()
    last = len(shape) == 4 and 1 <= shape[-1] <= MAX_CHANNELS  # the channels may be last
    hint = f"; channels last (N, H, W, C) become channels first with {name}.permute(0, 3, 1, 2)" if last else ""
    check_tensor(spectra, name, function, ("N", "C", "H", "W"), kind, hint)
    if not 1 <= shape[1] <= MAX_CHANNELS:
        needed = f"{function} needs {name} of shape (N, C, H, W), channels first with 1 to {MAX_CHANNELS} channels"
        raise ValueError(f"{needed}, got {shape_text(shape)}{hint}")


def check_two_classes(labels, function, what="images"):
    """Raise unless `labels` (0 real, 1 fake) hold both classes, whose means are asked for."""
    missing = [name for label, name in ((0, "real (0)"), (1, "fake (1)")) if not (labels == label).any()]
    if missing:
        raise ValueError(f"{function} needs {what} of both classes, got no {' and no '.join(missing)} in labels")


def check_spectra_labels(spectra, labels, function="mean_spectra"):
    """mean_spectra's arguments: spectra (N, C, H, W) channels first, labels (N,) of 0 and 1, both present."""
    check_channels_first(spectra, function, kind="real")
    check_values(spectra, function, "spectra")
    check_labels(labels, len(spectra), function, 2)
    check_two_classes(labels, function, "spectra")


def check_values(values, function, name):
    """Raise unless the tensor or array `values` holds numbers (not a meta tensor), all finite; integers always
    are, and a tensor is read in slices of FINITE_CHUNK so that no mask the size of a training split is made."""
    if torch.is_tensor(values) and values.is_meta:
        raise ValueError(f"{function} needs {name} with values, got a tensor on the meta device, which holds none")
    if torch.is_tensor(values):
        flat = values.reshape(-1)
        finite = not values.is_floating_point() or all(torch.isfinite(part).all() for part in flat.split(FINITE_CHUNK))
    else:
        finite = values.dtype.kind != "f" or np.isfinite(values).all()
    if not finite:
        raise ValueError(f"{function} needs {name} of finite numbers, got NaN or Inf")


def check_weight_picture(model, shape, function="weight_picture"):
    """weight_picture's arguments: an nn.Linear with 2 outputs, and the (C, H, W) of its in_features."""
    if not isinstance(model, nn.Linear):
        raise TypeError(f"{function} needs model as an nn.Linear with 2 outputs (real, fake), got {describe(model)}")
    if model.out_features != 2:
        raise ValueError(f"{function} needs model with 2 outputs (real, fake), got nn.Linear with {model.out_features}")
    if isinstance(model.weight, nn.parameter.UninitializedParameter):
        raise ValueError(
            f"{function} needs model with initialized weights, got an nn.LazyLinear not yet run; call it on one batch first"
        )
    needed = f"{function} needs shape as the (C, H, W) of one spectrum, channels first, with C*H*W = "
    needed += f"{model.in_features}, the in_features of model"
    if not isinstance(shape, tuple | list | torch.Size):
        raise TypeError(f"{needed}, got {describe(shape)}")
    given = tuple(shape)
    if len(given) != 3 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in given):
        raise ValueError(f"{needed}, got {given}")
    if math.prod(given) != model.in_features or given[0] > MAX_CHANNELS:
        turned = given[0] > MAX_CHANNELS and given[2] <= MAX_CHANNELS and math.prod(given) == model.in_features
        hint = f"; channels last become channels first as ({given[2]}, {given[0]}, {given[1]})" if turned else ""
        raise ValueError(f"{needed}, got {shape_text(given)}{hint}")


def check_transform(image_data, eps, function="transform"):
    """transform's arguments: a numpy array of pixels (..., H, W, C), channels last, and eps from 0 up."""
    check_channels_last(image_data, function, "image_data", batched=False, numpy=True)
    if 0 in image_data.shape[-3:-1]:
        raise ValueError(
            f"{function} needs images of at least 1x1 pixels, got (..., H, W, C) = {shape_text(image_data.shape)}"
        )
    check_values(image_data, function, "image_data")
    check_number(eps, "eps", function, low=0)


TRAINING_OPTIONS = {"epochs": 1, "batch_size": 1}  # Task 3's whole-number options and their least value
SPLIT_SIZES = ("train_size", "val_size", "test_size")
DATA_OPTIONS = ("data", *SPLIT_SIZES, "eval_split", "skip_unreadable")
MAX_SEED = 2**32 - 1  # the command line's bound: numpy's generator takes no more
MAX_LR, MAX_WEIGHT_DECAY = 1.0, 1000.0  # the command line's bounds: beyond them Adam overflows or learns nothing


def check_options_present(args, names, function):
    """Raise unless `args` has every attribute of `names`, as the script's parser makes them."""
    missing = [name for name in names if not hasattr(args, name)]
    if missing or isinstance(args, dict):
        tip = (
            "argparse.Namespace(**args) makes options of a dict"
            if isinstance(args, dict)
            else ("deepfake_interpretation.build_parser().parse_args([]) makes every option")
        )
        raise TypeError(
            f"{function} needs args as an argparse.Namespace with {', '.join(missing or names)}, got "
            f"{describe(args)}; {tip}"
        )


def check_seed(seed, name, function):
    """Raise unless `seed` is a Python int from 0 to MAX_SEED, which torch.manual_seed and numpy both take."""
    if isinstance(seed, np.integer):
        raise TypeError(f"{function} needs {name} as an int, got {describe(seed)}; int({name}) converts it")
    check_count(seed, name, function, low=0, high=MAX_SEED)


def check_training_options(args, function, data=False):
    """Task 3's options as its parser makes them: epochs and batch_size from 1, seed from 0 to MAX_SEED, lr above
    0 up to 1 and weight_decay from 0 to 1000 (the command line's bounds); with `data` also the folder, the three
    split sizes, eval_split and skip_unreadable."""
    check_options_present(
        args, [*TRAINING_OPTIONS, "seed", "lr", "weight_decay", *(DATA_OPTIONS if data else ())], function
    )
    for name, low in [*TRAINING_OPTIONS.items(), *((size, 1) for size in SPLIT_SIZES if data)]:
        check_count(getattr(args, name), f"args.{name}", function, low)
    check_seed(args.seed, "args.seed", function)
    check_number(args.lr, "args.lr", function, above=0, high=MAX_LR)
    check_number(args.weight_decay, "args.weight_decay", function, low=0, high=MAX_WEIGHT_DECAY)
    if data:
        check_choice(args.eval_split, "args.eval_split", function, ("train", "val", "test"))
        check_flag(args.skip_unreadable, "args.skip_unreadable", function)
        check_path(args.data, "args.data", function, "a folder")


def check_classifier_weights(model, function):
    """Raise unless `model` is an nn.Module whose weights hold finite values (not on the meta device); return its
    first parameter, or None."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{function} needs model as an nn.Module such as nn.Linear(C*H*W, 2), got {describe(model)}")
    weight = next(model.parameters(), None)
    if weight is not None and weight.is_meta:
        raise ValueError(f"{function} needs model with weights, got one on the meta device, which holds no values")
    lazy = nn.parameter.UninitializedParameter
    if any(
        p.is_floating_point() and not isinstance(p, lazy) and not torch.isfinite(p).all() for p in model.parameters()
    ):
        raise ValueError(f"{function} needs model with finite weights, got NaN or Inf in them; build or train it again")
    return weight


def check_classifier(model, spectra, function, name):
    """Raise unless `model` maps spectra (n, F) to two logits (n, 2), real and fake, in the dtype and on the device
    of `spectra`, tried on the first spectrum."""
    weight = check_classifier_weights(model, function)
    if weight is not None and (weight.dtype, weight.device) != (spectra.dtype, spectra.device):
        raise TypeError(
            f"{function} needs {name} as {weight.dtype} on {weight.device}, as model's weights are, got "
            f"{spectra.dtype} on {spectra.device}; {name}.to({str(weight.device)!r}, {weight.dtype}) converts it"
        )
    features = getattr(model, "in_features", 0)  # 0: not known yet (nn.LazyLinear) or not a linear layer
    if features and spectra.shape[1] != features:
        raise ValueError(
            f"{function} needs {name} of shape (N, {features}), the in_features of model, got "
            f"{shape_text(tuple(spectra.shape))}"
        )
    training = model.training
    try:
        with torch.no_grad():
            logits = model.eval()(spectra[:1])  # eval mode: no batch statistics change, no dropout draws
    except (RuntimeError, TypeError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise ValueError(
            f"{function} needs a model that takes {name} (N, {spectra.shape[1]}); it refused: {reason}"
        ) from None
    finally:
        model.train(training)
    if not (torch.is_tensor(logits) and tuple(logits.shape) == (1, 2)):
        got = shape_text(tuple(logits.shape)) if torch.is_tensor(logits) else describe(logits)
        raise ValueError(
            f"{function} needs a model whose output is two logits (N, 2), real and fake, got {got} for one spectrum"
        )


def check_classifier_data(model, spectra, labels, function, name="spectra", labels_name="labels"):
    """Task 3's classifier and what it classifies: standardized spectra (N, F), finite, N from 1, in the dtype and
    on the device of the model's weights; a model with the output (N, 2); labels (N,) int64 of 0 (real) and 1
    (fake)."""
    four = torch.is_tensor(spectra) and spectra.dim() == 4
    hint = f"; spectra (N, C, H, W) become (N, C*H*W) with {name}.flatten(1), standardized as detect does"
    check_tensor(spectra, name, function, ("N", "F"), hint=hint if four else "")
    if not len(spectra):
        raise ValueError(f"{function} needs at least one image in {name}, got {shape_text(tuple(spectra.shape))}")
    check_values(spectra, function, name)
    check_classifier(model, spectra, function, name)
    if torch.is_tensor(labels) and labels.device != spectra.device:
        raise TypeError(
            f"{function} needs {labels_name} on {spectra.device}, as {name} are, got {labels.device}; "
            f"{labels_name}.to({str(spectra.device)!r}) moves them"
        )
    check_labels(labels, len(spectra), function, 2, labels_name)
    if labels.dtype != torch.int64:
        raise TypeError(
            f"{function} needs {labels_name} as int64 on {spectra.device}, got {labels.dtype} on {labels.device}; "
            f"{labels_name}.to({str(spectra.device)!r}, torch.int64) converts them"
        )


def check_training(model, splits, args, function="train"):
    """Task 3's train: splits {"train", "val"} of (spectra (N, F), labels (N,)) as check_classifier_data takes them,
    a model with weights to train, and the training options. Returns the training and the validation pair."""
    pairs = split_pairs(splits, function, ("train", "val"), "spectra")
    for key, (spectra, labels) in zip(("train", "val"), pairs):
        check_classifier_data(model, spectra, labels, function, f'splits["{key}"][0]', f'splits["{key}"][1]')
    check_two_classes(pairs[0][1], function, 'training images (splits["train"])')
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"{function} needs a model with weights to train (requires_grad), got one without")
    check_training_options(args, function)
    return pairs


def check_detect(args, device, function="detect"):
    """Task 3's detect (and its twin fit_fast): the data and training options, the folder and the device;
    returns the device as a torch.device."""
    from iml.face_cache import check_data_folder  # the command line's wording for a missing or wrong folder

    check_training_options(args, function, data=True)
    device = check_device(device, function)
    check_data_folder(args.data)
    return device


def split_pairs(splits, function, keys, what):
    """The (`what`, labels) pairs of `keys` in the dict `splits`; TypeError if one is missing or not a pair."""
    needed = ", ".join(f'"{key}": ({what}, labels)' for key in keys)
    if not isinstance(splits, dict):
        raise TypeError(f"{function} needs splits as a dict {{{needed}}}, got {describe(splits)}")
    for key in keys:
        if key not in splits:
            found = ", ".join(map(repr, splits)) or "none"
            raise TypeError(f"{function} needs splits as a dict {{{needed}}}, got one without {key!r} (keys: {found})")
        if not (isinstance(splits[key], tuple | list) and len(splits[key]) == 2):
            given = describe(splits[key]) + (f" of {len(splits[key])}" if isinstance(splits[key], tuple | list) else "")
            raise TypeError(f'{function} needs splits["{key}"] as a pair ({what}, labels), got {given}')
    return [splits[key] for key in keys]


def check_image_splits(splits, function, keys):
    """The detector's splits {key: (images (N, H, W, C) channels last, labels (N,) of 0 and 1)} with N from 1;
    returns the pairs of `keys` in order."""
    pairs = split_pairs(splits, function, keys, "images")
    for key, (images, labels) in zip(keys, pairs):
        check_channels_last(images, function, f'splits["{key}"][0]')
        if not len(images):
            raise ValueError(f'{function} needs at least one image in splits["{key}"][0], got none')
        check_values(images, function, f'splits["{key}"][0]')
        check_labels(labels, len(images), function, 2, f'splits["{key}"][1]')
        if labels.dtype != torch.int64:
            raise TypeError(f'{function} needs splits["{key}"][1] as int64, got {labels.dtype}; .long() converts it')
        if key == "train":
            check_two_classes(labels, function, 'training images (splits["train"])')
        if key != keys[0] and images.shape[1:] != pairs[0][0].shape[1:]:
            raise ValueError(
                f'{function} needs splits["{key}"][0] of the training images\' size {shape_text(pairs[0][0].shape[1:])},'
                f" got {shape_text(images.shape[1:])}"
            )
    return pairs
