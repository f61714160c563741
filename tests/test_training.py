"""The training in src/mnist_integrated.py (one epoch, the test accuracy, a whole run with Adam and one-cycle),
and the data it trains on (iml/mnist_cnn.py: images as float tensors, the splits, predictions)."""

from types import SimpleNamespace

import pytest
import torch
from conftest import cnn_turning_nan

import mnist_integrated
from iml.common import set_seed
from iml.mnist_cnn import evaluate, mnist_splits, predict, to_float_images
from mnist_integrated import build_parser, train_model
from models import CNN


def test_to_float_images_gives_pixels_in_zero_one_with_a_channel(mnist_test):
    images = mnist_test[0][:4]
    x = to_float_images(images, "cpu")
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    torch.testing.assert_close(x[:, 0] * 255, images.float())


class Recording(torch.nn.Module):
    """A model that records the number of every image it sees (its pixels are number / 10), and predicts nothing
    useful."""

    def __init__(self):
        super().__init__()
        self.linear, self.seen = torch.nn.Linear(1, 10), []

    def forward(self, x):
        self.seen.append((x.flatten(1)[:, 0] * 10).round().detach())
        return self.linear(x.flatten(1)[:, :1])


def test_an_epoch_covers_every_item_once_shuffled_and_test_in_order():
    images = (torch.arange(10.0) / 10).view(10, 1, 1, 1).expand(10, 1, 28, 28)  # MNIST's shape, pixels in [0, 1]
    labels = torch.arange(10)
    model = Recording()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    mnist_integrated.train(SimpleNamespace(batch_size=4, seed=0), model, (images, labels), scheduler, 1)
    assert [len(x) for x in model.seen] == [4, 4, 2]
    order = torch.cat(model.seen).long()
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    model.seen.clear()
    assert mnist_integrated.test(model, (images, labels)) >= 0 and not model.training
    assert torch.equal(torch.cat(model.seen), torch.arange(10.0))  # testing keeps the order
    # another epoch, another order
    mnist_integrated.train(SimpleNamespace(batch_size=4, seed=0), model, (images, labels), scheduler, 2)
    assert torch.cat(model.seen[1:]).long().tolist() != order.tolist()


def test_evaluate_counts_correct_predictions_and_sets_eval_mode():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot((x.flatten(1)[:, 0] * 10).round().long(), 10).float()

    model = Fixed().train()
    images = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]).view(5, 1, 1, 1).expand(5, 1, 28, 28)  # pixels digit / 10
    assert evaluate(model, images, torch.tensor([0, 1, 2, 0, 0]), batch_size=2) == pytest.approx(3 / 5)
    assert not model.training
    assert predict(model, images, batch_size=2).tolist() == [0, 1, 2, 3, 4]
    model.train()
    assert mnist_integrated.test(model, (images, torch.tensor([0, 1, 2, 0, 0]))) == pytest.approx(3 / 5)
    assert not model.training


def test_train_stops_with_a_floating_point_error_when_the_loss_is_nan(mnist_test):
    images, labels = to_float_images(mnist_test[0][:64], "cpu"), mnist_test[1][:64]
    model = cnn_turning_nan(after_calls=2)()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    args = SimpleNamespace(batch_size=16, epochs=3, seed=0)
    with pytest.raises(FloatingPointError, match=r"^training diverged: the loss became nan in epoch 2, batch 2$"):
        mnist_integrated.train(args, model, (images, labels), scheduler, 2)


def test_mnist_splits_holds_out_validation_digits_and_caps_the_training_set():
    args = SimpleNamespace(seed=0, val_size=1000, train_size=3000)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = mnist_splits(args, "cpu")
    assert (len(x_train), len(y_train), len(x_val), len(y_val), len(x_test), len(y_test)) == (
        3000,
        3000,
        1000,
        1000,
        10_000,
        10_000,
    )
    assert x_train.shape[1:] == (1, 28, 28) and x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    # the same seed gives the same split, another seed another one
    again = mnist_splits(args, "cpu")
    assert torch.equal(again[1][0], x_val)
    other = mnist_splits(SimpleNamespace(seed=1, val_size=1000, train_size=3000), "cpu")
    assert not torch.equal(other[1][0], x_val)
    everything = mnist_splits(SimpleNamespace(seed=0, val_size=0, train_size=0), "cpu")
    assert (len(everything[0][0]), len(everything[1][0])) == (60_000, 0)


def test_short_training_on_a_real_subset(tmp_path, capsys):
    args = build_parser().parse_args(
        ["--train-size", "6000", "--val-size", "1000", "--epochs", "1", "--weights", str(tmp_path / "w.pth")]
    )
    set_seed(0)
    device = torch.device("cpu")
    model, accuracy = train_model(args, *mnist_splits(args, device))
    assert accuracy > 0.90, accuracy
    assert isinstance(model, CNN)
    out = capsys.readouterr().out
    assert "training on 6000 digits, validating on 1000, device cpu, epochs: 1" in out
    assert "epoch 1: training loss " in out and ", validation accuracy " in out
    assert f"test accuracy {accuracy:.2%} on 10000 test digits" in out
