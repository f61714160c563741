"""What a weights file must be before torch reads a byte of it: a regular file (a pipe would block
the reader forever) and a zip archive, as torch.save writes, whose members unpack to no more than
models.py allows, so that a tiny file cannot make torch.load allocate gigabytes.

models.load_checkpoint asks `checkpoint_problem` with its limits, then loads with weights_only=True
and explains a refusal with `refusal_reason`; models.load_cnn loads the state dict with
`load_weights`, which accepts the names of a network wrapped by DataParallel or torch.compile.
"""

import math
import numbers
import pickle
import re
import sys
import zipfile

import torch

from iml.common import printable, relative
from iml.file_limits import size_problem, zip_directory_problem
from iml.validation import check_number, check_path, describe

NOT_A_CHECKPOINT = "is truncated or not a PyTorch checkpoint"
# torch.save stores its members uncompressed, so the file is its members plus about 100 bytes of
# headers each; the CNN's checkpoint has 16 members and a table of contents of 1.2 KB.
MAX_TABLE_OF_CONTENTS = 64 * 2**10
# A config's share of the checkpoint's pickle, which models.py bounds at 1 MiB; the CNN's names take about 1 KB.
MAX_CONFIG_BYTES = 512 * 2**10
# The prefix that a wrapper puts on every name of a network's state dict, and the wrapper.
WRAPPERS = {"module.": "nn.DataParallel or DistributedDataParallel", "_orig_mod.": "torch.compile"}


def checkpoint_problem(path, max_unpacked, max_pickled):
    """Why `path` cannot be a checkpoint of the exercise's CNN, judged without unpacking it, or None.

    Looks only at the file's type and size and the zip archive's table of contents: a folder,
    pipe, link loop or unreadable file, a file of more than `max_unpacked` bytes, a table of
    contents of more than MAX_TABLE_OF_CONTENTS, a file that is not a zip archive and an archive
    whose members unpack to more than `max_unpacked` bytes (or whose pickle exceeds `max_pickled`)
    each get their reason.
    """
    problem = size_problem(path, max_unpacked, "accepted for this CNN's weights, whose file takes 1.6 MB")
    problem = problem or zip_directory_problem(path, MAX_TABLE_OF_CONTENTS, "of a checkpoint of this CNN")
    if problem is not None:
        return problem
    if not zipfile.is_zipfile(path):
        return NOT_A_CHECKPOINT
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return f"{NOT_A_CHECKPOINT} ({type(error).__name__})"
    unpacked = sum(info.file_size for info in members)
    pickled = sum(info.file_size for info in members if info.filename.endswith(".pkl"))
    if unpacked > max_unpacked:
        return (
            f"unpacks to {unpacked / 2**20:,.0f} MiB, far more than the 1.6 MB of this CNN's weights "
            f"(at most {max_unpacked // 2**20} MiB is accepted)"
        )
    if pickled > max_pickled:
        return (
            f"holds {pickled / 2**20:,.1f} MiB of pickle, far more than the 1 KB this CNN's checkpoint needs "
            f"(at most {max_pickled // 2**20} MiB is accepted)"
        )
    return None


def refusal_reason(path, error):
    """Why torch.load(weights_only=True) refused `path`, from its UnpicklingError `error`, said precisely.

    Tensors of a subclass of torch.Tensor are pickled as a call of _rebuild_from_type_v2 with the
    class, which the safe loader would have to import: that case is named apart from a pickle
    that calls any other function (os.system, ...). Nothing was run in either case.
    """
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    culprit = found.group(1) if found else "unsafe content"
    if found and b"_rebuild_from_type_v2" in pickle_bytes(path):
        return (
            f"holds tensors of the class {culprit}, a subclass of torch.Tensor, which the safe loader does not "
            "build because that would import the class and run its code (save plain tensors, "
            "t.as_subclass(torch.Tensor))"
        )
    return f"was refused by the safe loader because it would run code (it calls {culprit})"


def pickle_bytes(path):
    """The pickle member of the checkpoint `path` (its size was bounded by `checkpoint_problem`), or b""."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(name) if name else b""
    except (OSError, zipfile.BadZipFile, KeyError):
        return b""


def unwrapped_state(state, path):
    """(`state` with the prefix that a wrapper put on every key removed, the note that says so), for
    "module." of nn.DataParallel and DistributedDataParallel and "_orig_mod." of torch.compile, also
    nested; (`state`, None) when its keys carry none."""
    removed = []
    while state and (
        prefix := next((p for p in WRAPPERS if all(isinstance(k, str) and k.startswith(p) for k in state)), None)
    ):
        state = {key[len(prefix) :]: value for key, value in state.items()}
        removed.append(prefix)
    if not removed:
        return state, None
    wrappers = " and ".join(dict.fromkeys(WRAPPERS[prefix] for prefix in removed))
    return state, (
        f"note: weights file {relative(path)} was saved from a network wrapped by {wrappers} "
        f"(every name starts with '{''.join(removed)}'); loaded without that prefix."
    )


def load_weights(model, state, path):
    """Load the state dict `state` of the weights file `path` into `model`, wrapper prefixes removed
    (`unwrapped_state`, said on stderr once loaded); returns None, or, when it does not fit, the
    reason for models.CheckpointError, saying how the names or shapes differ."""
    state, note = unwrapped_state(state, path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        return f"belongs to another network, not this CNN{differences(model, state)}"
    # checked after loading, when every tensor has this CNN's shape: a crafted view could be far larger
    if (name := nonfinite_tensor(model)) is not None:
        return f"holds NaN or Inf in {name}"
    if note is not None:
        print(note, file=sys.stderr)
    return None


def nonfinite_tensor(model):
    """The name of the first floating-point tensor of `model`'s state dict holding NaN or Inf, or None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def differences(model, state):
    """How the names and shapes of `state` differ from `model`'s: " (it lacks a, b, c and 7 more, and ...)", or ""."""
    own = model.state_dict()
    missing = [name for name in own if name not in state]
    extra = [printable(name) for name in state if name not in own]
    shapes = [
        f"{name} is {tuple(value.shape) if torch.is_tensor(value) else type(value).__name__}, not {tuple(own[name].shape)}"
        for name, value in state.items()
        if name in own and not (torch.is_tensor(value) and value.shape == own[name].shape)
    ]
    parts = [f"it lacks {brief(missing)}"] if missing else []
    parts += [f"it has {brief(extra)}, which this CNN lacks"] if extra else []
    parts += [brief(shapes)] if shapes else []
    return f" ({', and '.join(parts)})" if parts else ""


def brief(items, shown=3):
    """ "a, b, c and 4 more" for messages."""
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def plain_problem(value, depth=0):
    """Why the safe loader could not read `value` back as a training option, or None: the plain values are None,
    bool, int (64-bit), float, str, and lists, tuples and dicts of them with str keys, nested at most 8 deep (no
    tensors: the weights are the model's)."""
    if depth > 8:
        return "nested more than 8 deep (or holding itself)"
    if isinstance(value, list | tuple):
        return next((p for p in (plain_problem(item, depth + 1) for item in value) if p), None)
    if isinstance(value, dict):
        if (key := next((k for k in value if not isinstance(k, str)), None)) is not None:
            return f"holding the key {key!r} ({type(key).__name__}), not a str"
        return next((p for p in (plain_problem(item, depth + 1) for item in value.values()) if p), None)
    if type(value) is int and not -(2**63) <= value < 2**64:
        return "= an int of more than 64 bits"
    if value is None or type(value) in (bool, int, float, str):
        return None
    return f"= {describe(value)}; str(path), number.item() or tensor.tolist() makes a value plain"


def checkpoint_path(path, function):
    """`path` as a Path; TypeError unless it is a str or os.PathLike (not None, bytes or a number)."""
    return check_path(path, "path", function, "a file name")


def check_checkpoint_path(path, function):
    """Raise unless `path` names a file that can be written: a str or Path, not a folder, in a folder that exists."""
    target = checkpoint_path(path, function)
    if not str(path) or target.is_dir():
        raise ValueError(f"{function} needs path as a file name, got {relative(target)!r}, a folder")
    if not target.parent.is_dir():
        raise ValueError(
            f"{function} needs path in a folder that exists, got {relative(target)}; make the folder first"
        )


def check_checkpoint_parts(path, model, config, test_accuracy, network, function="save_checkpoint"):
    """Raise unless models.load_cnn could read back what save_checkpoint would write: a path, a model with the
    weights of `network` (the exercise's CNN class), all finite, a dict `config` of plain values (see plain_problem)
    of at most MAX_CONFIG_BYTES pickled, and `test_accuracy` in [0, 1] (NaN: not measured)."""
    check_checkpoint_path(path, function)
    if not isinstance(model, torch.nn.Module):
        tip = "; a state dict goes into models.CNN() with load_state_dict" if isinstance(model, dict) else ""
        raise TypeError(f"{function} needs model as the trained CNN (models.CNN), got {describe(model)}{tip}")
    state = model.state_dict()
    if any(tensor.is_meta for tensor in state.values()):
        raise ValueError(f"{function} needs model with weights, got one on the meta device, which holds no values")
    if difference := differences(network(), unwrapped_state(state, path)[0]):  # a wrapper's prefix: load_cnn removes it
        raise ValueError(
            f"{function} needs model as the exercise's CNN, which load_cnn reads back, got another network{difference}"
        )
    if (name := nonfinite_tensor(model)) is not None:
        raise ValueError(
            f"{function} refuses model: {name} holds NaN or Inf, which load_cnn would refuse; train again with a lower learning rate"
        )
    check_config(config, function, MAX_CONFIG_BYTES)
    if isinstance(test_accuracy, numbers.Real) and not isinstance(test_accuracy, bool):
        if math.isnan(test_accuracy):
            return  # not measured
        if test_accuracy > 1:
            raise ValueError(
                f"{function} needs test_accuracy as a fraction from 0 to 1, got {test_accuracy:g}; a percentage p becomes p / 100"
            )
    check_number(test_accuracy, "test_accuracy", function, low=0, high=1)


def check_config(config, function, max_bytes):
    """Raise unless `config` is a dict of training options that the safe loader reads back, of at most `max_bytes`
    pickled (the weights' names need the rest of the checkpoint's pickle)."""
    if not isinstance(config, dict):
        tip = "; vars(args) makes a dict of an argparse.Namespace" if type(config).__name__ == "Namespace" else ""
        raise TypeError(f"{function} needs config as a dict of the training options, got {describe(config)}{tip}")
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"{function} needs config with str keys, got the key {key!r} ({type(key).__name__})")
        if (problem := plain_problem(value)) is not None:
            raise TypeError(
                f"{function} needs config of plain values (numbers, str, None, lists and dicts of them), which the "
                f"safe loader reads back, got config[{key!r}] {problem}"
            )
    if (size := len(pickle.dumps(config))) > max_bytes:  # plain values only, so pickling runs no code
        raise ValueError(
            f"{function} needs config of at most {max_bytes // 1024} KiB pickled, got {size // 1024} KiB; keep the options only"
        )
