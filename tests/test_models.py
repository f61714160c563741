"""src/models.py: the CNN, the shipped weights and the checkpoint format, including damaged,
foreign and malicious weights files as a user meets them on the command line."""

import pytest
import torch
from conftest import RunsCommand, assert_clear_error, run_script

import cli
from common import WEIGHTS_PATH
from models import (
    CHECKPOINT_FORMAT,
    CNN,
    MNIST_MEAN,
    MNIST_STD,
    CheckpointError,
    functional_state,
    load_checkpoint,
    load_cnn,
    save_checkpoint,
)
from training import evaluate, to_float_images


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
    standardised = torch.full_like(black, -MNIST_MEAN / MNIST_STD)
    inner = shipped_model.classifier(shipped_model.features(standardised))
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
    assert "belongs to another network, not this CNN; recreate it with" in cli.user_message(info.value)
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


def test_missing_weights_for_input_optimisation(tmp_path):
    result = run_script("input_opt.py", "--weights", tmp_path / "nothing.pth", "--out", tmp_path)
    assert_clear_error(result, "nothing.pth does not exist; recreate it with `python src/mnist_integrated.py --retrain")
