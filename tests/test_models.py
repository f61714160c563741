import argparse

import pytest
import torch

import util
from mnist_integrated import build_parser, to_float_images, train_model
from mnist_integrated import test as accuracy_of
from models import CNN, MNIST_MEAN, MNIST_STD, load_checkpoint, load_cnn, save_checkpoint


def test_cnn_shapes():
    model = CNN()
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 128, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == 390_410


def test_shipped_weights_reach_99_percent(shipped_model, mnist_test):
    images, labels = mnist_test
    checkpoint = torch.load(util.WEIGHTS_PATH, weights_only=True)
    assert set(checkpoint) >= {"model", "config", "test_accuracy"}
    accuracy = accuracy_of(shipped_model, to_float_images(images, "cpu"), labels)
    assert accuracy >= 0.99
    assert abs(accuracy - checkpoint["test_accuracy"]) < 1e-3
    assert checkpoint["config"]["val_size"] == 0  # trained on all 60,000 training digits


def test_model_takes_pixels_in_zero_one(shipped_model, mnist_test):
    images, labels = mnist_test
    x = to_float_images(images[:1000], "cpu")
    assert x.min() >= 0 and x.max() <= 1 and x.dtype == torch.float32
    assert accuracy_of(shipped_model, x, labels[:1000]) > 0.98
    # the standardisation lives inside the model: a black image (all zeros) reaches the first
    # convolution as -mean/std, so callers never normalise and zeros really mean black
    black = torch.zeros(1, 1, 28, 28)
    standardised = torch.full_like(black, -MNIST_MEAN / MNIST_STD)
    inner = shipped_model.classifier(shipped_model.features(standardised))
    torch.testing.assert_close(shipped_model(black), inner)
    assert not torch.allclose(shipped_model(black), shipped_model.classifier(shipped_model.features(black)))


def test_short_training_on_a_real_subset(tmp_path):
    args = build_parser().parse_args(
        ["--train-size", "6000", "--val-size", "1000", "--epochs", "1", "--weights", str(tmp_path / "w.pth")]
    )
    util.set_seed(0)
    model, accuracy, seconds = train_model(args, torch.device("cpu"))
    assert accuracy > 0.90, accuracy


def test_checkpoint_round_trip_and_foreign_weights(tmp_path):
    model = CNN()
    path = tmp_path / "w.pth"
    save_checkpoint(path, model, {"epochs": 1}, 0.5)
    loaded = load_cnn(path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert load_checkpoint(path)["config"] == {"epochs": 1}
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, path)
    with pytest.raises(util.UserError, match=r"belongs to another network, not this CNN; recreate it with"):
        load_cnn(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(util.UserError, match=r"is truncated or not a PyTorch checkpoint"):
        load_cnn(path)
    with pytest.raises(
        util.UserError, match=r"does not exist; recreate it with `python src/mnist_integrated.py --retrain"
    ):
        load_cnn(tmp_path / "missing.pth")


def test_parser_rejects_bad_values(capsys):
    parser = build_parser()
    for bad in (["--epochs", "0"], ["--batch-size", "-3"], ["--lr", "nan"]):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(bad)
        assert info.value.code == 2
    assert "must be a positive" in capsys.readouterr().err
    assert isinstance(parser.parse_args([]), argparse.Namespace)
