"""src/iml/validation.py and the package functions that call it: each bad input to the Python API gets its
error type and message before any work, valid ones of every accepted kind still work, and an empty batch gives
an empty result in every IG function. The exercise's own functions: tests/test_input_checks.py."""

import argparse
import re

import numpy as np
import pytest
import torch
from conftest import linear_model
from torch import nn

from iml import validation
from iml.attribution import (
    area_under_curve,
    as_baseline,
    attribute_in_chunks,
    blurred,
    completeness_gap,
    deletion_curve,
    make_baselines,
    output_digits,
    saliency,
    smooth_grad,
    spearman,
    target_outputs,
)
from iml.detector import (
    LinearDetector,
    add_data_arguments,
    add_training_arguments,
    class_means,
    command_parser,
    evaluate,
    fit_detector,
    fit_fast,
    train_epoch,
    wilson_interval,
)
from iml.exact_ig import exact_integrated_gradients
from iml.integrated_fast import integrate_gradients_fast, pad_to_multiple, precision_deviation
from iml.mnist_cnn import evaluate as digit_accuracy
from iml.mnist_cnn import predict
from iml.quadrature import quadrature
from iml.regularized import optimize_inputs, starting_images
from iml.spectra import dct2, dct_matrix, feature_batches, log_dct, log_fft, pixels, standardization
from mnist_integrated import integrate_gradients
from models import CNN

NET = linear_model()  # (N, 1, 28, 28) -> (N, 10), float64, eval mode
X = torch.rand(2, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
FAST = "integrate_gradients_fast needs "
COUNT = "as a whole number from 1 up (an int), got "
IMAGES = "images as a floating-point tensor (N, 1, 28, 28), got "
SHAPE = "images of shape (N, 1, 28, 28), got "
DIGIT = "output_digit as an output index from 0 up: an int, or an integer tensor (2,), "
BASELINE = "baseline as None (black), a number or a tensor that broadcasts to images (2, 1, 28, 28), got "
PIXEL_TIP = "; pixels 0-255 become [0, 1] with images.float() / 255"
CHANNELS_LAST = " of shape (N, H, W, C), channels last with 1 to 4 channels, got "
UINT8 = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)


REAL_FAKE = torch.tensor([0, 1])
SPLITS = {"train": (UINT8, REAL_FAKE), "val": (UINT8, REAL_FAKE)}


def detector_options(**changes):
    """The options of the detector's commands with their defaults, and `changes`."""
    parser = command_parser("deepfake-representations", "")
    add_data_arguments(parser, (4, 2, 2))
    add_training_arguments(parser)
    args = parser.parse_args([])
    return argparse.Namespace(**{**vars(args), "seed": 0, **changes})


def fast(**options):
    """integrate_gradients_fast of NET on X, digit 3, m = 4, with `options` replacing any of its arguments."""
    arguments = {"images": X, "output_digit": 3, "steps_m": 4, **options}
    return lambda: integrate_gradients_fast(NET, **arguments)


def detector():
    return LinearDetector(torch.zeros(3, 16, 16), torch.ones(3, 16, 16))


# (what is wrong, the call, the error, the whole message)
REFUSED = [
    # integrate_gradients_fast: every argument
    ("fast: batch_points -5", fast(batch_points=-5), ValueError, FAST + "batch_points " + COUNT + "-5"),
    ("fast: batch_points 0", fast(batch_points=0), ValueError, FAST + "batch_points " + COUNT + "0"),
    ("fast: batch_points float", fast(batch_points=64.0), TypeError, FAST + "batch_points " + COUNT + "the float 64.0"),
    ("fast: steps bool", fast(steps_m=True), TypeError, FAST + "steps_m " + COUNT + "the bool True"),
    ("fast: steps float", fast(steps_m=10.0), TypeError, FAST + "steps_m " + COUNT + "the float 10.0"),
    ("fast: steps 0", fast(steps_m=0), ValueError, FAST + "steps_m " + COUNT + "0"),
    (
        "fast: uint8 images",
        fast(images=torch.zeros(2, 1, 28, 28, dtype=torch.uint8)),
        TypeError,
        FAST + IMAGES + "a torch.uint8 tensor of shape (2, 1, 28, 28)" + PIXEL_TIP,
    ),
    (
        "fast: a numpy array",
        fast(images=X.numpy()),
        TypeError,
        FAST
        + IMAGES
        + "a numpy float64 array of shape (2, 1, 28, 28); torch.from_numpy(...) makes a tensor of an array",
    ),
    (
        "fast: a 2-D image",
        fast(images=X[0, 0]),
        ValueError,
        FAST + SHAPE + "(28, 28); a single image (28, 28) becomes one with images.view(1, 1, 28, 28)",
    ),
    (
        "fast: no batch dimension",
        fast(images=X[0]),
        ValueError,
        FAST + SHAPE + "(1, 28, 28); a single image (1, 28, 28) becomes a batch of one with images[None]",
    ),
    (
        "fast: no channel",
        fast(images=X[:, 0]),
        ValueError,
        FAST + SHAPE + "(2, 28, 28); images (N, 28, 28) get their channel with images.unsqueeze(1)",
    ),
    (
        "fast: channels last",
        fast(images=X.permute(0, 2, 3, 1)),
        ValueError,
        FAST
        + SHAPE
        + "(2, 28, 28, 1); channels last (N, 28, 28, 1) become channels first with images.permute(0, 3, 1, 2)",
    ),
    (
        "fast: flat images",
        fast(images=X.flatten(1)),
        ValueError,
        FAST + SHAPE + "(2, 784); flat images (N, 784) become (N, 1, 28, 28) with images.view(-1, 1, 28, 28)",
    ),
    ("fast: wrong size", fast(images=torch.rand(2, 1, 32, 32)), ValueError, FAST + SHAPE + "(2, 1, 32, 32)"),
    (
        "fast: string baseline",
        fast(baseline="blur"),
        TypeError,
        FAST + BASELINE + "the string 'blur'; make_baselines('blur', images) makes it",
    ),
    ("fast: bool baseline", fast(baseline=True), TypeError, FAST + BASELINE + "the bool True"),
    ("fast: list baseline", fast(baseline=[0.5]), TypeError, FAST + BASELINE + "a list"),
    (
        "fast: baseline of more images",
        fast(baseline=torch.zeros(3, 1, 28, 28)),
        ValueError,
        FAST + BASELINE + "(3, 1, 28, 28)",
    ),
    ("fast: float digit", fast(output_digit=3.0), TypeError, FAST + DIGIT + "got the float 3.0"),
    ("fast: bool digit", fast(output_digit=True), TypeError, FAST + DIGIT + "got the bool True"),
    ("fast: string digit", fast(output_digit="3"), TypeError, FAST + DIGIT + "got the string '3'"),
    ("fast: negative digit", fast(output_digit=-1), ValueError, FAST + DIGIT + "got -1"),
    (
        "fast: float digits",
        fast(output_digit=torch.tensor([1.0, 2.0])),
        TypeError,
        FAST + DIGIT + "got a torch.float32 tensor of shape (2,)",
    ),
    (
        "fast: digits of more images",
        fast(output_digit=torch.tensor([1, 2, 3])),
        ValueError,
        FAST + DIGIT + "one per image, got (3,)",
    ),
    (
        "fast: precision float16",
        fast(precision="float16"),
        ValueError,
        FAST + "precision as one of float32, bfloat16, got 'float16'",
    ),
    ("fast: compile 'no'", fast(compile="no"), TypeError, FAST + "compile as True or False, got the string 'no'"),
    (
        "fast: rule 3",
        fast(rule=3),
        TypeError,
        "quadrature needs rule as one of right, left, midpoint, trapezoid, gausslegendre, got the int 3",
    ),
    # the other IG functions
    (
        "exact: string baseline",
        lambda: exact_integrated_gradients(NET, X, 3, baseline="noise"),
        TypeError,
        "exact_integrated_gradients needs " + BASELINE + "the string 'noise'; make_baselines('noise', images) makes it",
    ),
    (
        "exact: float digit",
        lambda: exact_integrated_gradients(NET, X, 3.0),
        TypeError,
        "exact_integrated_gradients needs " + DIGIT + "got the float 3.0",
    ),
    (
        "attribute_in_chunks: steps 0",
        lambda: attribute_in_chunks(integrate_gradients_fast, NET, X, 3, 0),
        ValueError,
        "attribute_in_chunks needs steps_m " + COUNT + "0",
    ),
    (
        "saliency: a 2-D image",
        lambda: saliency(NET, X[0, 0], 3),
        ValueError,
        "saliency needs " + SHAPE + "(28, 28); a single image (28, 28) becomes one with images.view(1, 1, 28, 28)",
    ),
    ("saliency: negative digit", lambda: saliency(NET, X, -2), ValueError, "saliency needs " + DIGIT + "got -2"),
    (
        "target_outputs: batch_size 0",
        lambda: target_outputs(NET, X, 3, batch_size=0),
        ValueError,
        "target_outputs needs batch_size " + COUNT + "0",
    ),
    (
        "completeness_gap: attributions of one image",
        lambda: completeness_gap(NET, X, X[:1], 3),
        ValueError,
        "completeness_gap needs attributions of the shape of images (2, 1, 28, 28), got (1, 1, 28, 28)",
    ),
    (
        "completeness_gap: string baseline",
        lambda: completeness_gap(NET, X, X, 3, "black"),
        TypeError,
        "completeness_gap needs " + BASELINE + "the string 'black'; make_baselines('black', images) makes it",
    ),
    (
        "as_baseline: a complex tensor",
        lambda: as_baseline(torch.zeros(1, dtype=torch.complex64), X),
        TypeError,
        "as_baseline needs " + BASELINE + "a torch.complex64 tensor of shape (1,)",
    ),
    (
        "output_digits: a list of floats",
        lambda: output_digits([1.0, 2.0], 2, "cpu"),
        TypeError,
        "output_digits needs " + DIGIT + "got a list",
    ),
    (
        "make_baselines: no draws",
        lambda: make_baselines("noise", X, draws=0),
        ValueError,
        "make_baselines needs draws " + COUNT + "0",
    ),
    ("blurred: sigma 0", lambda: blurred(X, 0), ValueError, "blurred needs sigma as a finite number above 0, got 0"),
    (
        "smooth_grad: float samples",
        lambda: smooth_grad(lambda x: x, X, 2.0),
        TypeError,
        "smooth_grad needs samples " + COUNT + "the float 2.0",
    ),
    (
        "smooth_grad: negative samples",
        lambda: smooth_grad(lambda x: x, X, -3),
        ValueError,
        "smooth_grad needs samples " + COUNT + "-3",
    ),
    (
        "smooth_grad: negative sigma",
        lambda: smooth_grad(lambda x: x, X, 2, sigma=-0.1),
        ValueError,
        "smooth_grad needs sigma as a finite number of at least 0, got -0.1",
    ),
    (
        "spearman: maps of two shapes",
        lambda: spearman(X, X[:1]),
        ValueError,
        "spearman needs b of the shape of a (2, 1, 28, 28), got (1, 1, 28, 28)",
    ),
    (
        "deletion_curve: percentages",
        lambda: deletion_curve(NET, X, 3, X, torch.tensor([0.0, 10.0, 50.0])),
        ValueError,
        "deletion_curve needs fractions of at least 1 values from 0 to 1, got (0, 10, 50); percentages p become p / 100",
    ),
    (
        "deletion_curve: scores of another shape",
        lambda: deletion_curve(NET, X, 3, X[:, 0], torch.tensor([0.0, 0.5])),
        ValueError,
        "deletion_curve needs scores of the shape of images (2, 1, 28, 28), got (2, 28, 28)",
    ),
    (
        "area_under_curve: one fraction",
        lambda: area_under_curve(torch.tensor([0.5]), torch.ones(2, 1)),
        ValueError,
        "area_under_curve needs fractions of at least 2 values from 0 to 1, got (0.5)",
    ),
    (
        "area_under_curve: values of other fractions",
        lambda: area_under_curve(torch.tensor([0.0, 1.0]), torch.ones(2, 3)),
        ValueError,
        "area_under_curve needs values of shape (N, 2), got (2, 3)",
    ),
    (
        "quadrature: steps 2.5",
        lambda: quadrature("right", 2.5),
        TypeError,
        "quadrature needs steps_m " + COUNT + "the float 2.5",
    ),
    ("quadrature: steps 0", lambda: quadrature("right", 0), ValueError, "quadrature needs steps_m " + COUNT + "0"),
    (
        "pad_to_multiple: multiple 0",
        lambda: pad_to_multiple(torch.ones(3), 0),
        ValueError,
        "pad_to_multiple needs multiple " + COUNT + "0",
    ),
    (
        "precision_deviation: two shapes",
        lambda: precision_deviation(X, X[0]),
        ValueError,
        "precision_deviation needs reduced of the shape of exact (1, 28, 28), got (2, 1, 28, 28)",
    ),
    # Task 1's regularized twin and Task 2's accuracy in iml
    (
        "optimize_inputs: a float digit",
        lambda: optimize_inputs(CNN().eval(), (3.7,), X[:1].float(), 1, 0.1),
        TypeError,
        "optimize_inputs needs neurons[0] as a whole number from 0 up (an int), got the float 3.7",
    ),
    (
        "optimize_inputs: starts (S, 28, 28)",
        lambda: optimize_inputs(CNN().eval(), (3,), X[:, 0].float(), 1, 0.1),
        ValueError,
        "optimize_inputs needs starts of shape (N, 1, 28, 28), got (2, 28, 28); images (N, 28, 28) get their channel "
        "with images.unsqueeze(1)",
    ),
    (
        "optimize_inputs: negative steps",
        lambda: optimize_inputs(CNN().eval(), (3,), X.float(), -1, 0.1),
        ValueError,
        "optimize_inputs needs steps as a whole number from 0 up (an int), got -1",
    ),
    (
        "mnist_cnn.predict: batch_size 0",
        lambda: predict(CNN(), X.float(), batch_size=0),
        ValueError,
        "predict needs batch_size " + COUNT + "0",
    ),
    (
        "mnist_cnn.evaluate: labels of other digits",
        lambda: digit_accuracy(CNN(), X.float(), torch.tensor([3])),
        ValueError,
        "evaluate needs labels as an integer tensor (2,) of classes 0 to 9, got (1,)",
    ),
    (
        "mnist_cnn.evaluate: no digits",
        lambda: digit_accuracy(CNN(), X[:0].float(), torch.tensor([], dtype=torch.int64)),
        ValueError,
        "evaluate needs at least one digit, got none",
    ),
    # Task 3's torch path: channels last, as the exercise's transform
    (
        "log_fft: channels first",
        lambda: log_fft(UINT8.permute(0, 3, 1, 2)),
        ValueError,
        "log_fft needs images" + CHANNELS_LAST + "(2, 3, 16, 16); channels first (..., C, H, W) become channels last "
        "with images.movedim(-3, -1)",
    ),
    (
        "log_fft: one image",
        lambda: log_fft(UINT8[0]),
        ValueError,
        "log_fft needs images"
        + CHANNELS_LAST
        + "(16, 16, 3); a single image (H, W, C) becomes a batch with images[None]",
    ),
    (
        "log_fft: a numpy array",
        lambda: log_fft(UINT8.numpy()),
        TypeError,
        "log_fft needs images as a tensor (N, H, W, C) of integer or float pixels, got a numpy uint8 array of shape "
        "(2, 16, 16, 3)",
    ),
    (
        "log_dct: bool pixels",
        lambda: log_dct(UINT8.bool()),
        TypeError,
        "log_dct needs images as a tensor (N, H, W, C) of integer or float pixels, got a torch.bool tensor of shape "
        "(2, 16, 16, 3)",
    ),
    (
        "pixels: grey (N, H, W)",
        lambda: pixels(torch.zeros(10, 16, 16, dtype=torch.uint8)),
        ValueError,
        "pixels needs images"
        + CHANNELS_LAST
        + "(10, 16, 16); grey images (N, H, W) become (N, H, W, 1) with images[..., None]",
    ),
    ("dct_matrix: n 0", lambda: dct_matrix(0), ValueError, "dct_matrix needs n " + COUNT + "0"),
    ("dct2: a vector", lambda: dct2(torch.ones(5)), ValueError, "dct2 needs x of shape (..., H, W), got (5,)"),
    (
        "feature_batches: batch_size -5",
        lambda: list(feature_batches(UINT8, "fft", "cpu", -5)),
        ValueError,
        "feature_batches needs batch_size " + COUNT + "-5",
    ),
    (
        "feature_batches: unknown representation",
        lambda: list(feature_batches(UINT8, "fourier", "cpu", 2)),
        ValueError,
        "feature_batches needs representation as one of fft, dct, pixel, got 'fourier'",
    ),
    (
        "standardization: batch_size 0",
        lambda: standardization(UINT8, "fft", "cpu", 0),
        ValueError,
        "feature_batches needs batch_size " + COUNT + "0",
    ),
    # Task 3's detector
    (
        "LinearDetector: mean and std of two shapes",
        lambda: LinearDetector(torch.zeros(3, 16, 16), torch.ones(3, 16, 15)),
        ValueError,
        "LinearDetector needs std of the shape of mean (3, 16, 16), got (3, 16, 15)",
    ),
    (
        "LinearDetector: features channels last",
        lambda: detector()(torch.zeros(2, 16, 16, 3)),
        ValueError,
        "LinearDetector needs features of shape (N, 3, 16, 16), got (2, 16, 16, 3)",
    ),
    (
        "class_means: float labels",
        lambda: class_means(UINT8, torch.tensor([0.0, 1.0]), "fft", "cpu", 2),
        TypeError,
        "class_means needs labels as an integer tensor (2,) of classes 0 to 1, got a torch.float32 tensor of shape (2,)",
    ),
    (
        "class_means: no fakes",
        lambda: class_means(UINT8, torch.tensor([0, 0]), "fft", "cpu", 2),
        ValueError,
        "class_means needs images of both classes, got no fake (1) in labels",
    ),
    (
        "evaluate: a label 2",
        lambda: evaluate(detector(), UINT8, torch.tensor([0, 2]), "fft", "cpu", 2),
        ValueError,
        "evaluate needs labels as an integer tensor (2,) of classes 0 to 1, got values from 0 to 2",
    ),
    (
        "evaluate: no images",
        lambda: evaluate(detector(), UINT8[:0], torch.tensor([], dtype=torch.int64), "fft", "cpu", 2),
        ValueError,
        "evaluate needs at least one image, got none",
    ),
    (
        "train_epoch: labels of other images",
        lambda: train_epoch(detector(), UINT8, torch.tensor([0, 1, 1]), "fft", None, "cpu", 2, None, ""),
        ValueError,
        "train_epoch needs labels as an integer tensor (2,) of classes 0 to 1, got (3,)",
    ),
    (
        "fit_detector: an unknown representation",
        lambda: fit_detector(detector_options(), SPLITS, "fourier", "cpu"),
        ValueError,
        "fit_detector needs representation as one of fft, dct, pixel, got 'fourier'",
    ),
    (
        "fit_detector: channels-first images",
        lambda: fit_detector(
            detector_options(), {**SPLITS, "train": (UINT8.permute(0, 3, 1, 2), REAL_FAKE)}, "fft", "cpu"
        ),
        ValueError,
        'fit_detector needs splits["train"][0] of shape (N, H, W, C), channels last with 1 to 4 channels, got (2, 3, 16, 16); channels first (..., C, H, W) become channels last with splits["train"][0].movedim(-3, -1)',
    ),
    (
        "fit_detector: no validation split",
        lambda: fit_detector(detector_options(), {"train": SPLITS["train"]}, "fft", "cpu"),
        TypeError,
        "fit_detector needs splits as a dict {\"train\": (images, labels), \"val\": (images, labels)}, got one without 'val' (keys: 'train')",
    ),
    (
        "fit_detector: epochs 0",
        lambda: fit_detector(detector_options(epochs=0), SPLITS, "fft", "cpu"),
        ValueError,
        "fit_detector needs args.epochs as a whole number from 1 up (an int), got 0",
    ),
    (
        "fit_detector: labels 0 and 2",
        lambda: fit_detector(detector_options(), {**SPLITS, "train": (UINT8, REAL_FAKE * 2)}, "fft", "cpu"),
        ValueError,
        'fit_detector needs splits["train"][1] as an integer tensor (2,) of classes 0 to 1, got values from 0 to 2',
    ),
    (
        "fit_fast: workers 0",
        lambda: fit_fast(detector_options(workers=0), "cpu"),
        ValueError,
        "fit_fast needs args.workers as a whole number from 1 up (an int), got 0",
    ),
    (
        "fit_fast: a device of a number",
        lambda: fit_fast(detector_options(), 0),
        TypeError,
        'fit_fast needs device as a torch.device or a name such as "cpu" or "cuda", got the int 0',
    ),
    (
        "starting_images: a seed for the generator",
        lambda: starting_images(["random"], 3),
        TypeError,
        "starting_images needs generator as a torch.Generator or None, got the int 3; torch.Generator().manual_seed(seed) makes one of a seed",
    ),
    (
        "starting_images: a number for a kind",
        lambda: starting_images(["random", 1]),
        TypeError,
        "starting_images needs kind as one of random, ones, got the int 1",
    ),
    (
        "saliency: a string for the network",
        lambda: saliency("cnn", X, 3),
        TypeError,
        "saliency needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "target_outputs: a string for the network",
        lambda: target_outputs("cnn", X, 3),
        TypeError,
        "target_outputs needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "completeness_gap: a string for the network",
        lambda: completeness_gap("cnn", X, X, 3),
        TypeError,
        "completeness_gap needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "integrate_gradients_fast: a string for the network",
        lambda: integrate_gradients_fast("cnn", X, 3, 4),
        TypeError,
        "integrate_gradients_fast needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "exact_integrated_gradients: a string for the network",
        lambda: exact_integrated_gradients("cnn", X, 3),
        TypeError,
        "exact_integrated_gradients needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "attribute_in_chunks: a string for the network",
        lambda: attribute_in_chunks(integrate_gradients, "cnn", X, 3, 4),
        TypeError,
        "attribute_in_chunks needs net as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "mnist_cnn.predict: a string for the model",
        lambda: predict("cnn", X),
        TypeError,
        "predict needs model as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "mnist_cnn.evaluate: a string for the model",
        lambda: digit_accuracy("cnn", X, torch.tensor([1, 2])),
        TypeError,
        "evaluate needs model as an nn.Module such as models.load_cnn's CNN, got the string 'cnn'",
    ),
    (
        "wilson_interval: a count beyond 2**53",
        lambda: wilson_interval(5, 10**400),
        ValueError,
        "wilson_interval needs total of at most 2**53, got a number of 401 digits",
    ),
    (
        "wilson_interval: tensors",
        lambda: wilson_interval(torch.tensor(5), 10),
        TypeError,
        "wilson_interval needs correct and total as ints, got a tensor; confusion.trace().item() makes one",
    ),
    (
        "fit_detector: int32 labels",
        lambda: fit_detector(detector_options(), {**SPLITS, "train": (UINT8, REAL_FAKE.int())}, "fft", "cpu"),
        TypeError,
        'fit_detector needs splits["train"][1] as int64, got torch.int32; .long() converts it',
    ),
    (
        "fit_detector: validation images of another size",
        lambda: fit_detector(detector_options(), {**SPLITS, "val": (UINT8[:, :8], REAL_FAKE)}, "fft", "cpu"),
        ValueError,
        'fit_detector needs splits["val"][0] of the training images\' size (16, 16, 3), got (8, 16, 3)',
    ),
    (
        "starting_images: no kinds",
        lambda: starting_images([]),
        ValueError,
        "starting_images needs kinds as a non-empty list or tuple of names such as ('random', 'ones'), got an empty list",
    ),
    (
        "starting_images: one name, not a list",
        lambda: starting_images("random"),
        TypeError,
        "starting_images needs kinds as a non-empty list or tuple of names such as ('random', 'ones'), got the string 'random'; use ('random',) for one",
    ),
    (
        "starting_images: a device of another name",
        lambda: starting_images(["ones"], device="gpu"),
        ValueError,
        "starting_images cannot use device 'gpu': unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    (
        "fit_detector: one class in the training split",
        lambda: fit_detector(
            detector_options(), {**SPLITS, "train": (UINT8, torch.zeros(2, dtype=torch.int64))}, "fft", "cpu"
        ),
        ValueError,
        'fit_detector needs training images (splits["train"]) of both classes, got no fake (1) in labels',
    ),
    (
        "fit_fast: a million workers",
        lambda: fit_fast(detector_options(workers=10**6), "cpu"),
        ValueError,
        "fit_fast needs args.workers as a whole number from 1 to 1024, got 1000000",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED])
def test_each_bad_input_is_refused_with_what_was_given_and_what_is_expected(call, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        call()


def test_integer_counts_of_numpy_and_a_numpy_baseline_are_accepted_and_give_the_same_numbers():
    expected = integrate_gradients_fast(NET, X, 3, 4, baseline=0.25, batch_points=8)
    for options in (
        {"steps_m": np.int64(4), "baseline": 0.25, "batch_points": np.int32(8)},
        {"steps_m": 4, "baseline": np.full((1, 28, 28), 0.25), "batch_points": 8},
        {"steps_m": 4, "baseline": torch.tensor(0.25), "batch_points": 8, "output_digit": torch.tensor([3])},
    ):
        arguments = {"output_digit": 3, **options}
        torch.testing.assert_close(integrate_gradients_fast(NET, X, **arguments), expected, rtol=0, atol=0)


def test_an_empty_batch_gives_empty_attributions_in_every_ig_function():
    """The decision: an empty batch (0, 1, 28, 28) is a batch, so each IG function returns (0, 1, 28, 28)."""
    net, empty = CNN().eval(), torch.zeros(0, 1, 28, 28)
    no_digits = torch.zeros(0, dtype=torch.int64)
    results = {
        "integrate_gradients": integrate_gradients(net, empty, 3, 4),
        "integrate_gradients_fast": integrate_gradients_fast(net, empty, 3, 4),
        "integrate_gradients_fast, one digit per image": integrate_gradients_fast(net, empty, no_digits, 4),
        "exact_integrated_gradients": exact_integrated_gradients(net, empty, 3)[0],
        "attribute_in_chunks": attribute_in_chunks(integrate_gradients_fast, net, empty, no_digits, 4),
        "saliency": saliency(net, empty, 3),
    }
    for name, attributions in results.items():
        assert attributions.shape == (0, 1, 28, 28) and attributions.dtype == torch.float32, name
    assert target_outputs(net, empty, 3).shape == (0,)
    assert completeness_gap(net, empty, empty, 3).shape == (0,)


def test_the_messages_name_what_was_given():
    assert validation.shape_text(("N", 1, 28, 28)) == "(N, 1, 28, 28)" and validation.shape_text((5,)) == "(5,)"
    assert validation.describe(np.float64(2.0)) == "the float64 2.0"
    assert validation.describe(np.bool_(True)) == "the bool True"
    assert validation.describe(None) == "None" and validation.describe({}) == "a dict"
    assert validation.describe(torch.zeros(2, 3, dtype=torch.uint8)) == "a torch.uint8 tensor of shape (2, 3)"
    assert (
        validation.check_count(np.uint8(200), "size", "f", low=0) == 200
        and type(validation.check_count(np.uint8(200), "size", "f")) is int
    )


def test_a_network_of_other_layers_still_gets_its_images_checked_first():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    with pytest.raises(TypeError, match=r"^saliency needs images as a floating-point tensor"):
        saliency(net, torch.zeros(1, 1, 28, 28, dtype=torch.int64), 0)
