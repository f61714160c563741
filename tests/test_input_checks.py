"""The Python API of the exercise (src/input_opt.py, mnist_integrated.py, deepfake_interpretation.py, util.py,
models.py): each bad input gets its error type and message before any work, in the solution and in the
student handout, whose solution regions are stubs. The package's functions: tests/iml/test_validation.py."""

import argparse
import importlib.util
import re
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import deepfake_interpretation
import mnist_integrated  # its `test` would be collected as a test if imported by name
import util
from deepfake_interpretation import mean_spectra, transform, weight_picture
from iml.common import ROOT, WEIGHTS_PATH, InputError
from iml.handout import find_regions, stubbed
from input_opt import make_forward_pass, make_start, optimize_input
from mnist_integrated import integrate_gradients, train
from models import CNN, load_checkpoint, load_cnn, save_checkpoint

NET = CNN().eval()
X = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([3, 7])
STARTS = {"random": X[:1], "ones": torch.ones(1, 1, 28, 28)}
SPECTRA = torch.rand(4, 3, 16, 16)
REAL_FAKE = torch.tensor([0, 1, 0, 1])
FACES = np.zeros((2, 16, 16, 3), dtype=np.uint8)
PIXEL_TIP = "; pixels 0-255 become [0, 1] with images.float() / 255"
COUNT = "as a whole number from 1 up (an int), got "
IG = "integrate_gradients needs "
IG_IMAGES = IG + "test_images as a floating-point tensor (N, 1, 28, 28), got "
IG_SHAPE = IG + "test_images of shape (N, 1, 28, 28), got "
DIGIT = "output_digit as an output index from 0 up: an int, or an integer tensor (2,), "
TRANSFORM_SHAPE = "transform needs image_data of shape (..., H, W, C), channels last with 1 to 4 channels, got "
FIRST = "channels first (..., C, H, W) become channels last with np.moveaxis(image_data, -3, -1)"
DATA_IMAGES = " needs the images data[0] as a floating-point tensor (N, 1, 28, 28), got "
DATA_LABELS = " needs the labels data[1] as an integer tensor (2,) of classes 0 to 9, got "
SPECTRA_LABELS = "mean_spectra needs labels as an integer tensor (4,) of classes 0 to 1, got "
PICTURE = "weight_picture needs shape as the (C, H, W) of one spectrum, channels first, with C*H*W = 768, "
PICTURE += "the in_features of model, got "


def forward_pass(x, neuron):
    return make_forward_pass(NET)(x, neuron)


def ascent(neurons=(3,), starts=STARTS, steps=2, lr=0.1):
    return lambda: optimize_input(NET, neurons, starts, steps, lr)


def training(data, batch_size=2):
    """One epoch of Task 2's `train` of a fresh CNN on `data`, with `batch_size`."""
    model = CNN()
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD(model.parameters(), lr=0.0), lambda _: 1.0)
    return lambda: train(SimpleNamespace(batch_size=batch_size, seed=0), model, data, scheduler, 1)


FLAT = torch.rand(4, 768)  # standardized spectra of 16x16 RGB images, flattened
LINEAR = nn.Linear(768, 2)
NOWHERE = Path(tempfile.gettempdir()) / "never-written.pth"  # save_checkpoint refuses before it writes


def options(**changes):
    """Task 3's command line with its defaults, one epoch of batches of 2, and `changes`."""
    args = deepfake_interpretation.build_parser().parse_args(["--epochs", "1", "--batch-size", "2"])
    return argparse.Namespace(**{**vars(args), **changes})


def nan_linear():
    """Task 3's classifier with one weight NaN."""
    model = nn.Linear(768, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    return model


def task3_training(model=LINEAR, train=(FLAT, REAL_FAKE), val=(FLAT, REAL_FAKE), args=None):
    """Task 3's `train` on the given splits (val None: no validation split) and options."""
    splits = {"train": train} | ({} if val is None else {"val": val})
    return lambda: deepfake_interpretation.train(model, splits, options() if args is None else args)


def welford(first, second):
    estimator = util.WelfordEstimator()
    estimator.update(first)
    return lambda: estimator.update(second)


# (what is wrong, the call, the error, the whole message)
REFUSED = [
    # Task 1: input optimization
    (
        "forward_pass: a 2-D image",
        lambda: forward_pass(X[0, 0], torch.tensor(3)),
        ValueError,
        "forward_pass needs x of shape (1, 28, 28), got (28, 28); one image (28, 28) becomes (1, 28, 28) with x[None]",
    ),
    (
        "forward_pass: a batch",
        lambda: forward_pass(X[:1], torch.tensor(3)),
        ValueError,
        "forward_pass needs x of shape (1, 28, 28), got (1, 1, 28, 28); forward_pass takes one image: x[0] of a "
        "batch (1, 1, 28, 28)",
    ),
    (
        "forward_pass: uint8 pixels",
        lambda: forward_pass(torch.zeros(1, 28, 28, dtype=torch.uint8), torch.tensor(3)),
        TypeError,
        "forward_pass needs x as a floating-point tensor (1, 28, 28), got a torch.uint8 tensor of shape (1, 28, 28)"
        + PIXEL_TIP,
    ),
    (
        "forward_pass: an int neuron",
        lambda: forward_pass(X[0], 3),
        TypeError,
        "forward_pass needs neuron as a 0-d integer tensor such as torch.tensor(3), got the int 3",
    ),
    (
        "forward_pass under vmap: images (N, 28, 28)",
        lambda: torch.func.vmap(torch.func.grad(make_forward_pass(NET)))(X[:, 0], LABELS),
        ValueError,
        "forward_pass needs x of shape (1, 28, 28), got (28, 28); one image (28, 28) becomes (1, 28, 28) with x[None]",
    ),
    (
        "make_start: unknown kind",
        lambda: make_start("zeros"),
        ValueError,
        "make_start needs kind as one of random, ones, got 'zeros'",
    ),
    (
        "optimize_input: one digit, not a sequence",
        ascent(neurons=3),
        TypeError,
        "optimize_input needs neurons as a sequence of digits such as (3,), got the int 3",
    ),
    ("optimize_input: no digits", ascent(neurons=()), ValueError, "optimize_input needs at least one neuron, got none"),
    (
        "optimize_input: a float digit",
        ascent(neurons=(3.0,)),
        TypeError,
        "optimize_input needs neurons[0] as a whole number from 0 up (an int), got the float 3.0",
    ),
    (
        "optimize_input: a negative digit",
        ascent(neurons=(2, -1)),
        ValueError,
        "optimize_input needs neurons[1] as a whole number from 0 up (an int), got -1",
    ),
    (
        "optimize_input: a start (28, 28)",
        ascent(starts={"random": X[0, 0]}),
        ValueError,
        "optimize_input needs the start image 'random' of shape (1, 1, 28, 28), got (28, 28); a single image (28, 28) "
        "becomes one with images.view(1, 1, 28, 28)",
    ),
    (
        "optimize_input: a uint8 start",
        ascent(starts={"ones": torch.ones(1, 1, 28, 28, dtype=torch.uint8)}),
        TypeError,
        "optimize_input needs the start image 'ones' as a floating-point tensor (1, 1, 28, 28), got a torch.uint8 "
        "tensor of shape (1, 1, 28, 28)" + PIXEL_TIP,
    ),
    (
        "optimize_input: starts as a list",
        ascent(starts=[X[:1]]),
        TypeError,
        "optimize_input needs starts as a dict of starting images by name, got a list",
    ),
    ("optimize_input: no starts", ascent(starts={}), ValueError, "optimize_input needs at least one start, got none"),
    (
        "optimize_input: negative steps",
        ascent(steps=-5),
        ValueError,
        "optimize_input needs steps as a whole number from 0 up (an int), got -5",
    ),
    (
        "optimize_input: float steps",
        ascent(steps=10.0),
        TypeError,
        "optimize_input needs steps as a whole number from 0 up (an int), got the float 10.0",
    ),
    ("optimize_input: lr 0", ascent(lr=0), ValueError, "optimize_input needs lr as a finite number above 0, got 0"),
    (
        "optimize_input: lr NaN",
        ascent(lr=float("nan")),
        ValueError,
        "optimize_input needs lr as a finite number above 0, got nan",
    ),
    (
        "optimize_input: lr True",
        ascent(lr=True),
        TypeError,
        "optimize_input needs lr as a finite number above 0, got the bool True",
    ),
    # Task 2: the CNN's training, test and Integrated Gradients
    (
        "train: uint8 images",
        training((torch.zeros(2, 1, 28, 28, dtype=torch.uint8), LABELS)),
        TypeError,
        "train" + DATA_IMAGES + "a torch.uint8 tensor of shape (2, 1, 28, 28)" + PIXEL_TIP,
    ),
    (
        "train: pixels 0-255 as floats",
        training((X * 255, LABELS)),
        ValueError,
        f"train needs the images data[0] as pixels in [0, 1], got values from {X.min() * 255:g} to {X.max() * 255:g}; "
        "pixels 0-255 become [0, 1] with images / 255",
    ),
    (
        "train: MNIST's (N, 28, 28)",
        training((X[:, 0], LABELS)),
        ValueError,
        "train needs the images data[0] of shape (N, 1, 28, 28), got (2, 28, 28); images (N, 28, 28) get their channel "
        "with images.unsqueeze(1)",
    ),
    (
        "train: float labels",
        training((X, LABELS.float())),
        TypeError,
        "train" + DATA_LABELS + "a torch.float32 tensor of shape (2,)",
    ),
    (
        "train: a label 10",
        training((X, torch.tensor([3, 10]))),
        ValueError,
        "train" + DATA_LABELS + "values from 3 to 10",
    ),
    ("train: labels of one image", training((X, LABELS[:1])), ValueError, "train" + DATA_LABELS + "(1,)"),
    (
        "train: no digits",
        training((X[:0], LABELS[:0])),
        ValueError,
        "train needs at least one digit, got an empty data[0] (0, 1, 28, 28)",
    ),
    ("train: batch_size -5", training((X, LABELS), -5), ValueError, "batches needs batch_size " + COUNT + "-5"),
    (
        "train: batch_size 2.0",
        training((X, LABELS), 2.0),
        TypeError,
        "batches needs batch_size " + COUNT + "the float 2.0",
    ),
    (
        "train: images and labels apart",
        training(X),
        TypeError,
        "train needs data as a pair (images, labels), got a torch.float32 tensor of shape (2, 1, 28, 28)",
    ),
    (
        "test: uint8 images",
        lambda: mnist_integrated.test(NET, (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), LABELS)),
        TypeError,
        "test" + DATA_IMAGES + "a torch.uint8 tensor of shape (2, 1, 28, 28)" + PIXEL_TIP,
    ),
    (
        "test: no digits",
        lambda: mnist_integrated.test(NET, (X[:0], LABELS[:0])),
        ValueError,
        "test needs at least one digit, got an empty data[0] (0, 1, 28, 28)",
    ),
    (
        "integrate_gradients: uint8 images",
        lambda: integrate_gradients(NET, torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 3, 4),
        TypeError,
        IG_IMAGES + "a torch.uint8 tensor of shape (2, 1, 28, 28)" + PIXEL_TIP,
    ),
    (
        "integrate_gradients: a 2-D image",
        lambda: integrate_gradients(NET, X[0, 0], 3, 4),
        ValueError,
        IG_SHAPE + "(28, 28); a single image (28, 28) becomes one with images.view(1, 1, 28, 28)",
    ),
    (
        "integrate_gradients: no batch dimension",
        lambda: integrate_gradients(NET, X[0], 3, 4),
        ValueError,
        IG_SHAPE + "(1, 28, 28); a single image (1, 28, 28) becomes a batch of one with images[None]",
    ),
    (
        "integrate_gradients: 32x32",
        lambda: integrate_gradients(NET, torch.rand(2, 1, 32, 32), 3, 4),
        ValueError,
        IG_SHAPE + "(2, 1, 32, 32)",
    ),
    (
        "integrate_gradients: float steps",
        lambda: integrate_gradients(NET, X, 3, 4.0),
        TypeError,
        IG + "steps_m " + COUNT + "the float 4.0",
    ),
    (
        "integrate_gradients: bool steps",
        lambda: integrate_gradients(NET, X, 3, True),
        TypeError,
        IG + "steps_m " + COUNT + "the bool True",
    ),
    (
        "integrate_gradients: negative steps",
        lambda: integrate_gradients(NET, X, 3, -5),
        ValueError,
        IG + "steps_m " + COUNT + "-5",
    ),
    (
        "integrate_gradients: float digit",
        lambda: integrate_gradients(NET, X, 3.0, 4),
        TypeError,
        IG + DIGIT + "got the float 3.0",
    ),
    (
        "integrate_gradients: negative digit",
        lambda: integrate_gradients(NET, X, -1, 4),
        ValueError,
        IG + DIGIT + "got -1",
    ),
    (
        "integrate_gradients: digits of three images",
        lambda: integrate_gradients(NET, X, torch.tensor([1, 2, 3]), 4),
        ValueError,
        IG + DIGIT + "one per image, got (3,)",
    ),
    # Task 3: spectra, their means, the weights
    (
        "transform: channels first (3, 128, 128)",
        lambda: transform(np.zeros((3, 128, 128), dtype=np.uint8)),
        ValueError,
        TRANSFORM_SHAPE
        + "(3, 128, 128); "
        + FIRST
        + ", grey images (N, H, W) become (N, H, W, 1) with image_data[..., None]",
    ),
    (
        "transform: channels first (N, 3, 128, 128)",
        lambda: transform(np.zeros((2, 3, 128, 128), dtype=np.uint8)),
        ValueError,
        TRANSFORM_SHAPE + "(2, 3, 128, 128); " + FIRST,
    ),
    (
        "transform: a grey image",
        lambda: transform(np.zeros((128, 128), dtype=np.uint8)),
        ValueError,
        TRANSFORM_SHAPE + "(128, 128); a grey image (H, W) becomes one with image_data[..., None]",
    ),
    (
        "transform: a tensor",
        lambda: transform(torch.from_numpy(FACES)),
        TypeError,
        "transform needs image_data as a numpy array (..., H, W, C) of integer or float pixels, got a torch.uint8 tensor "
        "of shape (2, 16, 16, 3); tensor.numpy() makes an array of a tensor",
    ),
    (
        "transform: bool pixels",
        lambda: transform(FACES.astype(bool)),
        TypeError,
        "transform needs image_data as a numpy array (..., H, W, C) of integer or float pixels, got a numpy bool array "
        "of shape (2, 16, 16, 3)",
    ),
    (
        "transform: eps -1",
        lambda: transform(FACES, -1.0),
        ValueError,
        "transform needs eps as a finite number of at least 0, got -1",
    ),
    (
        "transform: eps as text",
        lambda: transform(FACES, "1e-8"),
        TypeError,
        "transform needs eps as a finite number of at least 0, got the string '1e-8'",
    ),
    (
        "mean_spectra: channels last",
        lambda: mean_spectra(SPECTRA.permute(0, 2, 3, 1), REAL_FAKE),
        ValueError,
        "mean_spectra needs spectra of shape (N, C, H, W), channels first with 1 to 4 channels, got (4, 16, 16, 3); "
        "channels last (N, H, W, C) become channels first with spectra.permute(0, 3, 1, 2)",
    ),
    (
        "mean_spectra: one spectrum (C, H, W)",
        lambda: mean_spectra(SPECTRA[0], REAL_FAKE),
        ValueError,
        "mean_spectra needs spectra of shape (N, C, H, W), got (3, 16, 16)",
    ),
    (
        "mean_spectra: numpy spectra",
        lambda: mean_spectra(SPECTRA.numpy(), REAL_FAKE),
        TypeError,
        "mean_spectra needs spectra as a real tensor (N, C, H, W), got a numpy float32 array of shape (4, 3, 16, 16); "
        "torch.from_numpy(...) makes a tensor of an array",
    ),
    (
        "mean_spectra: float labels",
        lambda: mean_spectra(SPECTRA, REAL_FAKE.float()),
        TypeError,
        SPECTRA_LABELS + "a torch.float32 tensor of shape (4,)",
    ),
    (
        "mean_spectra: bool labels",
        lambda: mean_spectra(SPECTRA, REAL_FAKE.bool()),
        TypeError,
        SPECTRA_LABELS + "a torch.bool tensor of shape (4,)",
    ),
    (
        "mean_spectra: a label 2",
        lambda: mean_spectra(SPECTRA, torch.tensor([0, 1, 2, 1])),
        ValueError,
        SPECTRA_LABELS + "values from 0 to 2",
    ),
    (
        "mean_spectra: labels of 3 spectra",
        lambda: mean_spectra(SPECTRA, REAL_FAKE[:3]),
        ValueError,
        SPECTRA_LABELS + "(3,)",
    ),
    (
        "mean_spectra: no fakes",
        lambda: mean_spectra(SPECTRA, torch.zeros(4, dtype=torch.int64)),
        ValueError,
        "mean_spectra needs spectra of both classes, got no fake (1) in labels",
    ),
    (
        "weight_picture: channels last",
        lambda: weight_picture(nn.Linear(768, 2), torch.Size((16, 16, 3))),
        ValueError,
        PICTURE + "(16, 16, 3); channels last become channels first as (3, 16, 16)",
    ),
    (
        "weight_picture: a shape of other size",
        lambda: weight_picture(nn.Linear(768, 2), (3, 16, 15)),
        ValueError,
        PICTURE + "(3, 16, 15)",
    ),
    ("weight_picture: (H, W)", lambda: weight_picture(nn.Linear(768, 2), (16, 48)), ValueError, PICTURE + "(16, 48)"),
    (
        "weight_picture: a shape as text",
        lambda: weight_picture(nn.Linear(768, 2), "3x16x16"),
        TypeError,
        PICTURE + "the string '3x16x16'",
    ),
    (
        "weight_picture: three outputs",
        lambda: weight_picture(nn.Linear(768, 3), (3, 16, 16)),
        ValueError,
        "weight_picture needs model with 2 outputs (real, fake), got nn.Linear with 3",
    ),
    (
        "weight_picture: not a linear layer",
        lambda: weight_picture(nn.Sequential(nn.Linear(768, 2)), (3, 16, 16)),
        TypeError,
        "weight_picture needs model as an nn.Linear with 2 outputs (real, fake), got a Sequential",
    ),
    # util and models
    (
        "util.batches: batch_size 0",
        lambda: list(util.batches([1, 2, 3], 0, "test", "items")),
        ValueError,
        "batches needs batch_size " + COUNT + "0",
    ),
    (
        "WelfordEstimator.update: a batch of another shape",
        welford(torch.zeros(2, 3, 4), torch.zeros(5, 4, 3)),
        ValueError,
        "WelfordEstimator.update needs batch of shape (n, 3, 4), got (5, 4, 3)",
    ),
    (
        "WelfordEstimator.update: integers",
        welford(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int64)),
        TypeError,
        "WelfordEstimator.update needs batch as a floating-point tensor (n, 3), got a torch.int64 tensor of shape (2, 3)",
    ),
    (
        "CNN: uint8 pixels",
        lambda: NET(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)),
        TypeError,
        "CNN needs x as a floating-point tensor (N, 1, 28, 28), got a torch.uint8 tensor of shape (2, 1, 28, 28)"
        + PIXEL_TIP,
    ),
    (
        "CNN: a 2-D image",
        lambda: NET(X[0, 0]),
        ValueError,
        "CNN needs x of shape (N, 1, 28, 28), got (28, 28); a single image (28, 28) becomes one with images.view(1, 1, 28, 28)",
    ),
    (
        "make_start: a number for kind",
        lambda: make_start(1),
        TypeError,
        "make_start needs kind as one of random, ones, got the int 1",
    ),
    (
        "make_start: a seed for the generator",
        lambda: make_start("random", 0),
        TypeError,
        "make_start needs generator as a torch.Generator or None, got the int 0; torch.Generator().manual_seed(seed) makes one of a seed",
    ),
    (
        "train: spectra not flattened",
        task3_training(train=(FLAT.view(4, 3, 16, 16), REAL_FAKE)),
        ValueError,
        'train needs splits["train"][0] of shape (N, F), got (4, 3, 16, 16); spectra (N, C, H, W) become (N, C*H*W) with splits["train"][0].flatten(1), standardized as detect does',
    ),
    (
        "train: float labels",
        task3_training(train=(FLAT, REAL_FAKE.float())),
        TypeError,
        'train needs splits["train"][1] as an integer tensor (4,) of classes 0 to 1, got a torch.float32 tensor of shape (4,)',
    ),
    (
        "train: int32 labels",
        task3_training(train=(FLAT, REAL_FAKE.int())),
        TypeError,
        'train needs splits["train"][1] as int64 on cpu, got torch.int32 on cpu; splits["train"][1].to(\'cpu\', torch.int64) converts them',
    ),
    (
        "train: float64 spectra",
        task3_training(train=(FLAT.double(), REAL_FAKE)),
        TypeError,
        'train needs splits["train"][0] as torch.float32 on cpu, as model\'s weights are, got torch.float64 on cpu; splits["train"][0].to(\'cpu\', torch.float32) converts it',
    ),
    (
        "train: no validation split",
        task3_training(val=None),
        TypeError,
        "train needs splits as a dict {\"train\": (spectra, labels), \"val\": (spectra, labels)}, got one without 'val' (keys: 'train')",
    ),
    (
        "train: spectra of another size",
        task3_training(train=(FLAT[:, :700], REAL_FAKE)),
        ValueError,
        'train needs splits["train"][0] of shape (N, 768), the in_features of model, got (4, 700)',
    ),
    (
        "train: empty",
        task3_training(train=(FLAT[:0], REAL_FAKE[:0])),
        ValueError,
        'train needs at least one image in splits["train"][0], got (0, 768)',
    ),
    (
        "train: args without epochs",
        task3_training(args=SimpleNamespace(lr=0.1)),
        TypeError,
        "train needs args as an argparse.Namespace with epochs, batch_size, seed, weight_decay, got a SimpleNamespace; deepfake_interpretation.build_parser().parse_args([]) makes every option",
    ),
    (
        "train: a float epoch count",
        task3_training(args=options(epochs=1.5)),
        TypeError,
        "train needs args.epochs as a whole number from 1 up (an int), got the float 1.5",
    ),
    (
        "train: lr 0",
        task3_training(args=options(lr=0)),
        ValueError,
        "train needs args.lr as a finite number above 0 and at most 1, got 0",
    ),
    (
        "train: labels 1 and 2",
        task3_training(train=(FLAT, REAL_FAKE + 1)),
        ValueError,
        'train needs splits["train"][1] as an integer tensor (4,) of classes 0 to 1, got values from 1 to 2',
    ),
    (
        "train: a string model",
        task3_training(model="linear"),
        TypeError,
        "train needs model as an nn.Module such as nn.Linear(C*H*W, 2), got the string 'linear'",
    ),
    (
        "evaluate: labels of another length",
        lambda: deepfake_interpretation.evaluate(LINEAR, FLAT, REAL_FAKE[:3]),
        ValueError,
        "evaluate needs labels as an integer tensor (4,) of classes 0 to 1, got (3,)",
    ),
    (
        "evaluate: a numpy array",
        lambda: deepfake_interpretation.evaluate(LINEAR, FLAT.numpy(), REAL_FAKE),
        TypeError,
        "evaluate needs spectra as a floating-point tensor (N, F), got a numpy float32 array of shape (4, 768); torch.from_numpy(...) makes a tensor of an array",
    ),
    (
        "detect: eval_split validation",
        lambda: deepfake_interpretation.detect(options(eval_split="validation"), torch.device("cpu")),
        ValueError,
        "detect needs args.eval_split as one of train, val, test, got 'validation'",
    ),
    (
        "detect: train_size 0",
        lambda: deepfake_interpretation.detect(options(train_size=0), torch.device("cpu")),
        ValueError,
        "detect needs args.train_size as a whole number from 1 up (an int), got 0",
    ),
    (
        "detect: a device gpu",
        lambda: deepfake_interpretation.detect(options(), "gpu"),
        ValueError,
        "detect cannot use device 'gpu': unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    (
        "detect: data a number",
        lambda: deepfake_interpretation.detect(options(data=3), "cpu"),
        TypeError,
        "detect needs args.data as a folder (a str or Path), got the int 3",
    ),
    (
        "detect: a negative weight decay",
        lambda: deepfake_interpretation.detect(options(weight_decay=-1.0), "cpu"),
        ValueError,
        "detect needs args.weight_decay as a finite number of at least 0 and at most 1000, got -1",
    ),
    (
        "save_checkpoint: a Path in config",
        lambda: save_checkpoint(NOWHERE, CNN(), {"data": Path("data")}, 0.5),
        TypeError,
        "save_checkpoint needs config of plain values (numbers, str, None, lists and dicts of them), which the safe loader reads back, got config['data'] = a PosixPath; str(path), number.item() or tensor.tolist() makes a value plain",
    ),
    (
        "save_checkpoint: a percentage",
        lambda: save_checkpoint(NOWHERE, CNN(), {}, 97.5),
        ValueError,
        "save_checkpoint needs test_accuracy as a fraction from 0 to 1, got 97.5; a percentage p becomes p / 100",
    ),
    (
        "save_checkpoint: a string model",
        lambda: save_checkpoint(NOWHERE, "cnn", {}, 0.5),
        TypeError,
        "save_checkpoint needs model as the trained CNN (models.CNN), got the string 'cnn'",
    ),
    (
        "save_checkpoint: a Namespace config",
        lambda: save_checkpoint(NOWHERE, CNN(), options(), 0.5),
        TypeError,
        "save_checkpoint needs config as a dict of the training options, got a Namespace; vars(args) makes a dict of an argparse.Namespace",
    ),
    (
        "make_forward_pass: a string for the network",
        lambda: make_forward_pass("cnn"),
        TypeError,
        "make_forward_pass needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "optimize_input: a string for the network",
        lambda: optimize_input("cnn", (3,), STARTS, 1, 0.1),
        TypeError,
        "optimize_input needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "integrate_gradients: a string for the network",
        lambda: integrate_gradients("cnn", X, 3, 4),
        TypeError,
        "integrate_gradients needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "test: a state dict for the model",
        lambda: mnist_integrated.test(NET.state_dict(), (X, LABELS)),
        TypeError,
        "test needs model as an nn.Module such as models.load_cnn's CNN, got an OrderedDict",
    ),
    (
        "load_folder: a number for the folder",
        lambda: util.load_folder(3, 1, 1, 1),
        TypeError,
        "load_folder needs folder as a path (a str or Path), got the int 3",
    ),
    (
        "load_folder: skip_unreadable as a string",
        lambda: util.load_folder("data/faces", 1, 1, 1, "no"),
        TypeError,
        "load_folder needs skip_unreadable as True or False, got the string 'no'",
    ),
    (
        "train: a numpy seed",
        task3_training(args=options(seed=np.int64(5))),
        TypeError,
        "train needs args.seed as an int, got the int64 5; int(args.seed) converts it",
    ),
    (
        "train: a seed beyond 2**32 - 1",
        task3_training(args=options(seed=2**64)),
        ValueError,
        "train needs args.seed as a whole number from 0 to 4294967295, got 18446744073709551616",
    ),
    (
        "train: weight decay 1e300",
        task3_training(args=options(weight_decay=1e300)),
        ValueError,
        "train needs args.weight_decay as a finite number of at least 0 and at most 1000, got 1e+300",
    ),
    (
        "train: NaN spectra",
        task3_training(train=(torch.full((4, 768), float("nan")), REAL_FAKE)),
        ValueError,
        'train needs splits["train"][0] of finite numbers, got NaN or Inf',
    ),
    (
        "train: a model with one output",
        task3_training(model=nn.Linear(768, 1)),
        ValueError,
        "train needs a model whose output is two logits (N, 2), real and fake, got (1, 1) for one spectrum",
    ),
    (
        "train: a model without weights",
        task3_training(model=nn.Sequential(nn.Linear(768, 2)).requires_grad_(False)),
        ValueError,
        "train needs a model with weights to train (requires_grad), got one without",
    ),
    (
        "train: a pair of three",
        task3_training(train=(FLAT, REAL_FAKE, REAL_FAKE)),
        TypeError,
        'train needs splits["train"] as a pair (spectra, labels), got a tuple of 3',
    ),
    (
        "train: options as a dict",
        task3_training(args=vars(options())),
        TypeError,
        "train needs args as an argparse.Namespace with epochs, batch_size, seed, lr, weight_decay, got a dict; argparse.Namespace(**args) makes options of a dict",
    ),
    (
        "evaluate: a model of another input size",
        lambda: deepfake_interpretation.evaluate(nn.Sequential(nn.Linear(700, 2)), FLAT, REAL_FAKE),
        ValueError,
        "evaluate needs a model that takes spectra (N, 768); it refused: mat1 and mat2 shapes cannot be multiplied (1x768 and 700x2)",
    ),
    (
        "evaluate: a model of three outputs",
        lambda: deepfake_interpretation.evaluate(nn.Linear(768, 3), FLAT, REAL_FAKE),
        ValueError,
        "evaluate needs a model whose output is two logits (N, 2), real and fake, got (1, 3) for one spectrum",
    ),
    (
        "evaluate: float64 spectra for a Sequential",
        lambda: deepfake_interpretation.evaluate(nn.Sequential(nn.Linear(768, 2)), FLAT.double(), REAL_FAKE),
        TypeError,
        "evaluate needs spectra as torch.float32 on cpu, as model's weights are, got torch.float64 on cpu; spectra.to('cpu', torch.float32) converts it",
    ),
    (
        "detect: a missing data folder",
        lambda: deepfake_interpretation.detect(options(data=NOWHERE.parent / "no-faces"), "cpu"),
        InputError,
        f"no image folder at {NOWHERE.parent / 'no-faces'}",
    ),
    (
        "detect: a device this machine lacks (MPS: on Linux never)",
        lambda: deepfake_interpretation.detect(options(), "mps"),
        ValueError,
        "detect cannot use device 'mps': mps was asked for but MPS is not available",
    ),
    (
        "save_checkpoint: another network",
        lambda: save_checkpoint(NOWHERE, nn.Linear(3, 2), {}, 0.5),
        ValueError,
        "save_checkpoint needs model as the exercise's CNN, which load_cnn reads back, got another network (it lacks features.0.weight, features.0.bias, features.3.weight and 7 more, and it has weight, bias, which this CNN lacks)",
    ),
    (
        "save_checkpoint: a folder for the path",
        lambda: save_checkpoint(NOWHERE.parent, CNN(), {}, 0.5),
        ValueError,
        f"save_checkpoint needs path as a file name, got {str(NOWHERE.parent)!r}, a folder",
    ),
    (
        "save_checkpoint: a folder that does not exist",
        lambda: save_checkpoint(NOWHERE.parent / "no-folder" / "w.pth", CNN(), {}, 0.5),
        ValueError,
        f"save_checkpoint needs path in a folder that exists, got {NOWHERE.parent / 'no-folder' / 'w.pth'}; make the folder first",
    ),
    (
        "save_checkpoint: a number as a key",
        lambda: save_checkpoint(NOWHERE, CNN(), {1: 2}, 0.5),
        TypeError,
        "save_checkpoint needs config with str keys, got the key 1 (int)",
    ),
    (
        "save_checkpoint: a tensor in config",
        lambda: save_checkpoint(NOWHERE, CNN(), {"mean": torch.zeros(3)}, 0.5),
        TypeError,
        "save_checkpoint needs config of plain values (numbers, str, None, lists and dicts of them), which the safe loader reads back, got config['mean'] = a torch.float32 tensor of shape (3,); str(path), number.item() or tensor.tolist() makes a value plain",
    ),
    (
        "save_checkpoint: a config of 600 KiB",
        lambda: save_checkpoint(NOWHERE, CNN(), {"note": "x" * 600_000}, 0.5),
        ValueError,
        "save_checkpoint needs config of at most 512 KiB pickled, got 585 KiB; keep the options only",
    ),
    (
        "save_checkpoint: a model on the meta device",
        lambda: save_checkpoint(NOWHERE, CNN().to("meta"), {}, 0.5),
        ValueError,
        "save_checkpoint needs model with weights, got one on the meta device, which holds no values",
    ),
    (
        "load_cnn: a device of another name",
        lambda: load_cnn(WEIGHTS_PATH, "gpu"),
        ValueError,
        "load_cnn cannot use device 'gpu': unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    (
        "evaluate: a model holding NaN",
        lambda: deepfake_interpretation.evaluate(nan_linear(), FLAT, REAL_FAKE),
        ValueError,
        "evaluate needs model with finite weights, got NaN or Inf in them; build or train it again",
    ),
    (
        "evaluate: labels on the meta device",
        lambda: deepfake_interpretation.evaluate(LINEAR, FLAT, REAL_FAKE.to("meta")),
        TypeError,
        "evaluate needs labels on cpu, as spectra are, got meta; labels.to('cpu') moves them",
    ),
    (
        "evaluate: a model on the meta device",
        lambda: deepfake_interpretation.evaluate(nn.Linear(768, 2, device="meta"), FLAT, REAL_FAKE),
        ValueError,
        "evaluate needs model with weights, got one on the meta device, which holds no values",
    ),
    (
        "train: one class in the training split",
        task3_training(train=(FLAT, torch.zeros(4, dtype=torch.int64))),
        ValueError,
        'train needs training images (splits["train"]) of both classes, got no fake (1) in labels',
    ),
    (
        "transform: an empty image",
        lambda: transform(np.zeros((0, 8, 3))),
        ValueError,
        "transform needs images of at least 1x1 pixels, got (..., H, W, C) = (0, 8, 3)",
    ),
    (
        "transform: NaN pixels",
        lambda: transform(np.full((8, 8, 3), np.nan)),
        ValueError,
        "transform needs image_data of finite numbers, got NaN or Inf",
    ),
    (
        "mean_spectra: NaN spectra",
        lambda: mean_spectra(torch.full((4, 3, 16, 16), float("nan")), REAL_FAKE),
        ValueError,
        "mean_spectra needs spectra of finite numbers, got NaN or Inf",
    ),
    (
        "weight_picture: bools as sizes",
        lambda: weight_picture(nn.Linear(3, 2), (True, True, 3)),
        ValueError,
        "weight_picture needs shape as the (C, H, W) of one spectrum, channels first, with C*H*W = 3, the in_features of model, got (True, True, 3)",
    ),
    (
        "weight_picture: an nn.LazyLinear not yet run",
        lambda: weight_picture(nn.LazyLinear(2), (3, 16, 16)),
        ValueError,
        "weight_picture needs model with initialized weights, got an nn.LazyLinear not yet run; call it on one batch first",
    ),
    (
        "save_checkpoint: a state dict for the model",
        lambda: save_checkpoint(NOWHERE, CNN().state_dict(), {}, 0.5),
        TypeError,
        "save_checkpoint needs model as the trained CNN (models.CNN), got an OrderedDict; a state dict goes into models.CNN() with load_state_dict",
    ),
    (
        "save_checkpoint: an int of 2101 bits",
        lambda: save_checkpoint(NOWHERE, CNN(), {"a": 2**2100}, 0.5),
        TypeError,
        "save_checkpoint needs config of plain values (numbers, str, None, lists and dicts of them), which the safe loader reads back, got config['a'] = an int of more than 64 bits",
    ),
    (
        "save_checkpoint: a config nested 10 deep",
        lambda: save_checkpoint(NOWHERE, CNN(), {"a": [[[[[[[[[[1]]]]]]]]]]}, 0.5),
        TypeError,
        "save_checkpoint needs config of plain values (numbers, str, None, lists and dicts of them), which the safe loader reads back, got config['a'] nested more than 8 deep (or holding itself)",
    ),
    (
        "save_checkpoint: an int key inside",
        lambda: save_checkpoint(NOWHERE, CNN(), {"a": {1: 2}}, 0.5),
        TypeError,
        "save_checkpoint needs config of plain values (numbers, str, None, lists and dicts of them), which the safe loader reads back, got config['a'] holding the key 1 (int), not a str",
    ),
    (
        "save_checkpoint: a negative accuracy",
        lambda: save_checkpoint(NOWHERE, CNN(), {}, -0.1),
        ValueError,
        "save_checkpoint needs test_accuracy as a finite number of at least 0 and at most 1, got -0.1",
    ),
    (
        "load_cnn: None for the path",
        lambda: load_cnn(None),
        TypeError,
        "load_checkpoint needs path as a file name (a str or Path), got None",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_bad_input_is_refused_with_what_was_given_and_what_is_expected(call, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        call()


def test_valid_inputs_of_every_accepted_kind_still_work():
    assert transform(FACES[0]).shape == (16, 16, 3)  # a single image, as documented
    assert transform(FACES[..., :1].astype(np.float32)).shape == (2, 16, 16, 1)  # grey, float pixels
    means, _ = mean_spectra(SPECTRA.double(), REAL_FAKE.to(torch.uint8))
    assert means.shape == (2, 3, 16, 16)
    assert weight_picture(nn.Linear(768, 2), [3, 16, 16]).shape == (2, 3, 16, 16)
    torch.testing.assert_close(integrate_gradients(NET, X, np.int64(3), np.int64(4)), integrate_gradients(NET, X, 3, 4))
    assert optimize_input(NET, [np.int64(3)], STARTS, np.int64(0), 0.1).images.shape == (2, 1, 1, 28, 28)
    assert 0 <= mnist_integrated.test(NET, (X, LABELS)) <= 1
    assert make_start("random", torch.Generator().manual_seed(0)).shape == (1, 1, 28, 28)
    deepfake_interpretation.train(
        LINEAR, {"train": (FLAT, REAL_FAKE.to(torch.uint8).long()), "val": (FLAT, REAL_FAKE)}, options()
    )
    accuracy, confusion = deepfake_interpretation.evaluate(LINEAR, FLAT, REAL_FAKE)
    assert 0 <= accuracy <= 1 and confusion.sum() == 4


def test_save_checkpoint_writes_what_load_cnn_reads_back(tmp_path):
    config = {"epochs": 2, "lr": 0.003, "data": "data/MNIST", "sizes": (500, 100), "note": None, "nested": {"a": [1]}}
    for accuracy in (0.0, np.float64(0.985), float("nan")):
        save_checkpoint(tmp_path / "w.pth", CNN(), config, accuracy)
        checkpoint = load_checkpoint(tmp_path / "w.pth")
        assert checkpoint["config"] == config and type(checkpoint["test_accuracy"]) is float
    model = CNN()
    with torch.no_grad():
        model.classifier[3].bias[0] = float("inf")
    with pytest.raises(ValueError, match=r"^save_checkpoint refuses model: classifier\.3\.bias holds NaN or Inf"):
        save_checkpoint(tmp_path / "nan.pth", model, {}, 0.5)
    assert not (tmp_path / "nan.pth").exists() and not NOWHERE.exists()


def stubbed_module(name, tmp_path):
    """src/<name>.py as the student handout has it, its solution regions replaced by stubs, imported."""
    path = ROOT / "src" / f"{name}.py"
    copy = tmp_path / f"{name}_handout.py"
    copy.write_text(stubbed(path.read_text(), find_regions(path, f"src/{name}.py")))
    spec = importlib.util.spec_from_file_location(f"{name}_handout", copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_handouts_stubs_still_check_their_inputs_first(tmp_path):
    """A student's function refuses bad inputs before their own code runs; good ones reach the stub."""
    task1 = stubbed_module("input_opt", tmp_path)
    task2 = stubbed_module("mnist_integrated", tmp_path)
    task3 = stubbed_module("deepfake_interpretation", tmp_path)
    bad_and_good = [
        (
            lambda: task1.make_forward_pass(NET)(X[0, 0], torch.tensor(3)),
            lambda: task1.make_forward_pass(NET)(X[0], torch.tensor(3)),
        ),
        (
            lambda: task1.optimize_input(NET, (3,), STARTS, -1, 0.1),
            lambda: task1.optimize_input(NET, (3,), STARTS, 1, 0.1),
        ),
        (lambda: task2.integrate_gradients(NET, X[0], 3, 4), lambda: task2.integrate_gradients(NET, X, 3, 4)),
        (lambda: task3.transform(np.zeros((3, 128, 128))), lambda: task3.transform(FACES)),
        (
            lambda: task3.mean_spectra(SPECTRA.permute(0, 2, 3, 1), REAL_FAKE),
            lambda: task3.mean_spectra(SPECTRA, REAL_FAKE),
        ),
        (
            lambda: task3.weight_picture(nn.Linear(768, 2), (16, 16, 3)),
            lambda: task3.weight_picture(nn.Linear(768, 2), (3, 16, 16)),
        ),
    ]
    for bad, good in bad_and_good:
        with pytest.raises(ValueError):
            bad()
        with pytest.raises(NotImplementedError, match="^TODO: "):
            good()
