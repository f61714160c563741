"""src/models.py: the CNN, the shipped weights and the checkpoint format, including damaged,
foreign, malicious, oversized and non-finite weights files, and weights "files" that are folders,
pipes or link loops, as a user meets them on the command line. Memory bombs are refused under a
memory limit in test_hardening_reading.py."""

import os

import pytest
import torch
from conftest import RunsCommand, assert_clear_error, run_script

from iml import cli, common
from iml.checkpoint_files import checkpoint_problem
from iml.common import WEIGHTS_PATH
from iml.mnist_cnn import evaluate, to_float_images
from models import (
    CHECKPOINT_FORMAT,
    CNN,
    MAX_CHECKPOINT_BYTES,
    MAX_PICKLE_BYTES,
    MNIST_MEAN,
    MNIST_STD,
    CheckpointError,
    functional_state,
    load_checkpoint,
    load_cnn,
    save_checkpoint,
)


def test_cnn_shapes():
    model = CNN()
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 128, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == 390_410


def test_shipped_weights_reach_99_percent(shipped_model, mnist_test):
    images, labels = mnist_test
    checkpoint = torch.load(WEIGHTS_PATH, weights_only=True)
    assert set(checkpoint) >= {"model", "config", "test_accuracy"}
    accuracy = evaluate(shipped_model, to_float_images(images, "cpu"), labels)
    assert accuracy >= 0.99
    assert abs(accuracy - checkpoint["test_accuracy"]) < 1e-3
    assert checkpoint["config"]["val_size"] == 0  # trained on all 60,000 training digits


def test_model_takes_pixels_in_zero_one(shipped_model, mnist_test):
    images, labels = mnist_test
    x = to_float_images(images[:1000], "cpu")
    assert x.min() >= 0 and x.max() <= 1 and x.dtype == torch.float32
    assert evaluate(shipped_model, x, labels[:1000]) > 0.98
    # the standardisation lives inside the model: a black image (all zeros) reaches the first
    # convolution as -mean/std, so callers never normalise and zeros really mean black
    black = torch.zeros(1, 1, 28, 28)
    standardized = torch.full_like(black, -MNIST_MEAN / MNIST_STD)
    inner = shipped_model.classifier(shipped_model.features(standardized))
    torch.testing.assert_close(shipped_model(black), inner)
    assert not torch.allclose(shipped_model(black), shipped_model.classifier(shipped_model.features(black)))


def test_checkpoint_round_trip_and_foreign_weights(tmp_path):
    model = CNN()
    path = tmp_path / "w.pth"
    save_checkpoint(path, model, {"epochs": 1}, 0.5)
    loaded = load_cnn(path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert load_checkpoint(path)["config"] == {"epochs": 1}
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert (
        "belongs to another network, not this CNN (it lacks features.0.weight, features.0.bias, features.3.weight "
        "and 7 more, and it has weight, bias, which this CNN lacks); recreate it with"
    ) in cli.user_message(info.value)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert "is truncated or not a PyTorch checkpoint" in cli.user_message(info.value)
    with pytest.raises(CheckpointError) as info:
        load_cnn(tmp_path / "missing.pth")
    assert "does not exist; recreate it with `python src/mnist_integrated.py --retrain" in cli.user_message(info.value)


def test_checkpoint_holds_format_config_and_accuracy_and_loads_in_eval_mode(tmp_path):
    path = tmp_path / "w.pth"
    save_checkpoint(path, CNN().train(), {"epochs": 2, "lr": 0.003}, 0.25)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert checkpoint["config"] == {"epochs": 2, "lr": 0.003} and checkpoint["test_accuracy"] == 0.25
    assert not load_cnn(path).training


def test_a_bare_state_dict_is_wrapped_into_the_checkpoint_format(tmp_path):
    model = CNN()
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    checkpoint = load_checkpoint(path)
    assert checkpoint["config"] == {} and checkpoint["test_accuracy"] != checkpoint["test_accuracy"]  # nan
    assert torch.equal(load_cnn(path).features[0].weight, model.features[0].weight)


def test_checkpoint_errors_name_the_file_and_the_reason(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert info.value.path == tmp_path and info.value.reason == "is a folder, not a file"
    path = tmp_path / "list.pth"
    torch.save({"model": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_checkpoint(path)


def test_functional_state_stores_convolutions_channels_last_with_the_same_values(shipped_model):
    params, buffers = functional_state(shipped_model)
    assert set(params) == {name for name, _ in shipped_model.named_parameters()} and buffers == {}
    for name, p in shipped_model.named_parameters():
        assert torch.equal(params[name], p) and not params[name].requires_grad
        if p.dim() == 4:
            assert params[name].is_contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------ on the command line


def test_truncated_weights(weights_copy):
    weights_copy.write_bytes(weights_copy.read_bytes()[:50_000])
    result = run_script("mnist_integrated.py", "--train-only", "--weights", weights_copy)
    assert_clear_error(result, "is truncated or not a PyTorch checkpoint", "--retrain")


def test_weights_of_another_architecture(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": torch.nn.Linear(784, 10).state_dict()}, path)
    result = run_script("mnist_integrated.py", "--train-only", "--weights", path)
    assert_clear_error(result, "belongs to another network, not this CNN", "--retrain")


def test_weights_that_would_run_a_command_are_refused(tmp_path):
    marker = tmp_path / "command-ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": RunsCommand(f"touch {marker}")}, path)
    result = run_script("mnist_integrated.py", "--train-only", "--weights", path)
    assert_clear_error(result, "refused by the safe loader because it would run code")
    assert not marker.exists()
    # the file is a real exploit: unsafe loading would have run the command
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_weights_for_input_optimization(tmp_path):
    result = run_script("input_opt.py", "--weights", tmp_path / "nothing.pth", "--out", tmp_path)
    assert_clear_error(result, "nothing.pth does not exist; recreate it with `python src/mnist_integrated.py --retrain")


# ------------------------------------------------------------------ weights that are no regular file


def odd_weights(tmp_path, kind):
    """A weights path that is not a readable regular file; returns (path, the reason it gets)."""
    path = tmp_path / "weights.pth"
    if kind == "folder":
        path.mkdir()
        return path, "is a folder, not a file"
    if kind == "pipe":
        os.mkfifo(path)
        return path, "is not a regular file (a pipe, socket or device)"
    if kind == "link loop":
        path.symlink_to(path)
        return path, "cannot be reached (Too many levels of symbolic links)"
    path.symlink_to(tmp_path / "gone.pth")
    return path, "is a link to nothing (its target does not exist)"


@pytest.mark.parametrize("kind", ["folder", "pipe", "link loop", "dangling link"])
def test_weights_that_are_no_regular_file_are_named_before_torch_opens_them(tmp_path, kind):
    path, reason = odd_weights(tmp_path, kind)
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)  # a pipe would block here forever if it were opened
    assert info.value.path == path and info.value.reason == reason
    if "link" not in kind:  # see the next test
        assert cli.user_message(info.value) == (
            f"weights file {path} {reason}; recreate it with `python src/mnist_integrated.py --retrain --weights {path}`."
        )


@pytest.mark.parametrize("kind", ["link loop", "dangling link"])
def test_weights_that_are_a_broken_link_give_one_line_naming_the_link(tmp_path, kind):
    path, reason = odd_weights(tmp_path, kind)
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert cli.user_message(info.value).startswith(f"weights file {path} {reason}; recreate it with")


def test_weights_that_are_a_pipe_give_one_line_instead_of_hanging(tmp_path):
    path, _ = odd_weights(tmp_path, "pipe")
    result = run_script("input_opt.py", "--weights", path, "--steps", "1", "--out", tmp_path / "figures", timeout=120)
    assert_clear_error(result, "weights.pth is not a regular file (a pipe, socket or device); recreate it with")
    assert not (tmp_path / "figures").exists()


def test_unreadable_weights_are_called_unreadable_not_truncated(weights_copy, monkeypatch):
    # root reads a mode-000 file anyway, so the permission check is simulated for this one path
    real_access = os.access
    monkeypatch.setattr(common.os, "access", lambda p, mode: real_access(p, mode) and str(p) != str(weights_copy))
    with pytest.raises(CheckpointError) as info:
        load_cnn(weights_copy)
    assert info.value.reason == "is not readable (permission denied)"
    assert "truncated" not in cli.user_message(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read a file of mode 000, so it cannot be unreadable")
def test_weights_of_mode_000_are_called_unreadable(weights_copy):
    weights_copy.chmod(0)
    result = run_script("input_opt.py", "--weights", weights_copy, "--steps", "1", "--out", weights_copy.parent / "f")
    line = assert_clear_error(result, "is not readable (permission denied)")
    assert "truncated" not in line


# ------------------------------------------------------------------ oversized and non-finite weights


def test_the_shipped_weights_pass_the_checks_made_before_loading():
    assert checkpoint_problem(WEIGHTS_PATH, MAX_CHECKPOINT_BYTES, MAX_PICKLE_BYTES) is None


def test_a_checkpoint_with_an_oversized_pickle_is_refused_before_it_is_unpickled(tmp_path):
    path = tmp_path / "w.pth"
    state = {key: value.clone() for key, value in CNN().state_dict().items()}
    torch.save({"format": 1, "model": state, "config": {"note": "x" * (MAX_PICKLE_BYTES + 1)}}, path)
    assert torch.load(path, weights_only=True)["config"]["note"]  # a real checkpoint, loadable by torch
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert info.value.reason.startswith("holds 1.0 MiB of pickle, far more than the 1 KB")


def write_unchecked(path, model, test_accuracy):
    """A checkpoint as save_checkpoint lays it out, written without its checks: what another tool could write."""
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    torch.save({"format": 1, "model": state, "config": {}, "test_accuracy": test_accuracy}, path)


@pytest.mark.parametrize(("name", "value"), [("features.0.weight", float("nan")), ("classifier.3.bias", float("inf"))])
def test_weights_holding_nan_or_inf_are_refused_naming_the_tensor(tmp_path, name, value):
    model = CNN()
    with torch.no_grad():
        model.get_parameter(name).view(-1)[3] = value
    path = tmp_path / "w.pth"
    write_unchecked(path, model, 0.098)  # save_checkpoint refuses such a network
    assert load_checkpoint(path)["test_accuracy"] == 0.098  # the file itself is a sound checkpoint
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert cli.user_message(info.value) == (
        f"weights file {path} holds NaN or Inf in {name}; "
        f"recreate it with `python src/mnist_integrated.py --retrain --weights {path}`."
    )


def test_weights_holding_nan_stop_input_optimization_before_it_starts(tmp_path):
    model = CNN()
    with torch.no_grad():
        model.classifier[1].weight[0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    write_unchecked(path, model, 0.098)
    result = run_script("input_opt.py", "--weights", path, "--steps", "1", "--out", tmp_path / "figures")
    assert_clear_error(result, "nan.pth holds NaN or Inf in classifier.1.weight; recreate it with", "--retrain")
    assert "learning rate" not in result.stderr and "--lr" not in result.stderr
    assert not (tmp_path / "figures").exists()


# ------------------------------------------------------------------ state dicts of wrapped networks, tensor subclasses


WRAPPED = {
    "DataParallel": ("module.", "nn.DataParallel or DistributedDataParallel"),
    "torch.compile": ("_orig_mod.", "torch.compile"),
    "both": ("module._orig_mod.", "nn.DataParallel or DistributedDataParallel and torch.compile"),
}


@pytest.mark.parametrize(("prefix", "wrapper"), WRAPPED.values(), ids=WRAPPED.keys())
@pytest.mark.parametrize("bare", [False, True], ids=["checkpoint", "bare state dict"])
def test_weights_of_a_wrapped_network_load_without_the_prefix_and_say_so(tmp_path, capsys, prefix, wrapper, bare):
    model, path = CNN(), tmp_path / "wrapped.pth"
    state = {prefix + name: value for name, value in model.state_dict().items()}
    torch.save(state if bare else {"model": state}, path)
    loaded = load_cnn(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    note = capsys.readouterr().err.strip()
    assert note == (
        f"note: weights file {path} was saved from a network wrapped by {wrapper} "
        f"(every name starts with '{prefix}'); loaded without that prefix."
    )


def test_a_prefix_on_only_some_names_is_another_network(tmp_path, capsys):
    state = CNN().state_dict()
    state["module.features.0.weight"] = state.pop("features.0.weight")
    path = tmp_path / "half.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"it lacks features\.0\.weight, and it has module\.features\.0\.weight"):
        load_cnn(path)
    torch.save({"model": {f"module.{k}": v for k, v in torch.nn.Linear(3, 2).state_dict().items()}}, path)
    with pytest.raises(CheckpointError, match=r"it has weight, bias, which this CNN lacks\)$"):
        load_cnn(path)  # another network behind a wrapper's prefix: no note that it was loaded
    assert capsys.readouterr().err == ""


def test_weights_of_another_shape_are_named_with_both_shapes(tmp_path):
    state = CNN().state_dict()
    state["classifier.3.weight"] = torch.zeros(2, 256)
    path = tmp_path / "shape.pth"
    torch.save({"model": state}, path)
    with pytest.raises(
        CheckpointError, match=r"not this CNN \(classifier\.3\.weight is \(2, 256\), not \(10, 256\)\)$"
    ):
        load_cnn(path)


def test_parameters_saved_in_the_state_dict_load_safely(tmp_path):
    model, path = CNN(), tmp_path / "parameters.pth"
    torch.save({"model": {name: torch.nn.Parameter(value) for name, value in model.state_dict().items()}}, path)
    loaded = load_cnn(path)
    assert torch.equal(loaded.features[0].weight, model.features[0].weight)


class LabelledTensor(torch.Tensor):
    """A tensor subclass, such as libraries define: the safe loader would have to import it."""


def test_a_tensor_subclass_is_named_as_one_not_as_code_that_would_run(tmp_path):
    path = tmp_path / "subclass.pth"
    state = {name: value.as_subclass(LabelledTensor) for name, value in CNN().state_dict().items()}
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert info.value.reason == (
        f"holds tensors of the class {__name__}.LabelledTensor, a subclass of torch.Tensor, which the safe loader "
        "does not build because that would import the class and run its code (save plain tensors, "
        "t.as_subclass(torch.Tensor))"
    )


def test_a_pickle_that_calls_a_function_names_it(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    torch.save({"model": RunsCommand(f"touch {marker}")}, path)
    with pytest.raises(CheckpointError) as info:
        load_cnn(path)
    assert (
        info.value.reason
        == f"was refused by the safe loader because it would run code (it calls {os.system.__module__}.system)"
    )
    assert not marker.exists()
