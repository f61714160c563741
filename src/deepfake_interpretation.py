"""Task 3: tell real faces (FFHQ) from StyleGAN fakes with one linear layer on log-scaled spectra.

    python -m iml ffhq-download             # once: the 70,000 + 70,000 faces into data/ffhq_style_gan
    python src/deepfake_interpretation.py   # 500 / 100 / 200 per class (the full split: scripts/train.slurm)
`transform` is the exercise's ln(|FFT2(I)| + eps); GAN upsampling leaves traces there (Frank et al., arXiv:2003.08685).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import util


def transform(image_data: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Compute the log-scaled spectrum ln(|FFT2(I)| + eps) over rows and columns, channel by channel.

    Args:
        image_data: Images (..., H, W, C), channels last (1 to 4), e.g. uint8. np.fft.fft2's default axes: W and C.
        eps: Keeps the logarithm finite, at least 0.

    Returns:
        float64 (..., H, W, C), unshifted: frequency zero at [0, 0].
    """
    from iml.deepfake_checks import check_transform

    check_transform(image_data, eps)  # channels first (3, 128, 128) would transform the wrong axes silently
    # TODO: ln(|FFT2(I)| + eps) with np.fft.fft2 over the rows and columns (height and width), np.abs and np.log
    ### BEGIN SOLUTION
    return np.log(np.abs(np.fft.fft2(image_data, axes=(-3, -2))) + eps)
    ### END SOLUTION


def load_split(data: Path, sizes: tuple[int, int, int], skip_unreadable: bool) -> dict[str, tuple[Tensor, Tensor]]:
    """Read the exercise's split of A_ffhq (label 0) and B_stylegan (label 1) and `transform` every image.

    Args:
        data: The folder holding A_ffhq/ and B_stylegan/ (a str is taken too).
        sizes: Training, validation and test images per class.
        skip_unreadable: Leave out files that are not 128x128 RGB PNGs.

    Returns:
        {"train"|"val"|"test": (spectra float32 (N, C, H, W), labels int64 (N,))}, reals first.
    """
    real, fake = [util.load_folder(Path(data) / name, *sizes, skip_unreadable) for name in util.SOURCE_FOLDERS]
    splits = {}
    for name, real_files, fake_files in zip(("train", "val", "test"), real, fake):
        files = [*real_files, *fake_files]
        spectra = torch.empty(len(files), 3, util.IMAGE_SIZE, util.IMAGE_SIZE)  # (N, C, H, W)
        for i, chunk in enumerate(util.batches(files, 250, f"reading {name}", "images")):  # as the exercise does
            images = np.stack([util.read_rgb(path, util.IMAGE_SIZE) for path in chunk])
            spectra[250 * i : 250 * (i + 1)] = torch.from_numpy(transform(images)).float().permute(0, 3, 1, 2)
        splits[name] = (spectra, torch.cat([torch.zeros(len(real_files)), torch.ones(len(fake_files))]).long())
    return splits


def mean_spectra(spectra: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Average the spectra of the real and of the fake images, and subtract the one from the other.

    Args:
        spectra: (N, C, H, W).
        labels: (N,), 0 real and 1 fake.

    Returns:
        The means (2, C, H, W) float64, real then fake, and their difference fake - real (C, H, W).
    """
    from iml.deepfake_checks import check_spectra_labels

    check_spectra_labels(spectra, labels)  # a class without spectra would have a mean of NaN
    # TODO: the mean over the images of each class (float64), stacked real then fake, and fake minus real
    ### BEGIN SOLUTION
    means = torch.stack([spectra[labels == label].mean(dim=0, dtype=torch.float64) for label in (0, 1)])
    return means, means[1] - means[0]
    ### END SOLUTION


def weight_picture(model: nn.Linear, shape: torch.Size) -> Tensor:
    """Reshape the classifier's weights to the shape of a spectrum, one picture per class.

    Args:
        model: The trained classifier, weight (2, C*H*W).
        shape: The shape (C, H, W) of one spectrum.

    Returns:
        The weights (2, C, H, W), detached: where they are large the classifier looks.
    """
    from iml.deepfake_checks import check_weight_picture

    check_weight_picture(model, shape)  # (H, W, C) holds as many weights, in the wrong order
    # TODO: model.weight (2, C*H*W) reshaped to (2, C, H, W), detached from the autograd graph
    ### BEGIN SOLUTION
    return model.weight.detach().reshape(2, *shape)
    ### END SOLUTION


def train(model: nn.Module, splits: dict[str, tuple[Tensor, Tensor]], args: argparse.Namespace) -> None:
    """Train with Adam on shuffled batches; print the loss and the validation accuracy after each epoch.

    Args:
        model: The classifier.
        splits: {"train"|"val": (standardized spectra (N, C*H*W), labels (N,))}.
        args: epochs, batch_size, lr, weight_decay (Adam's L2 penalty) and seed.

    Raises:
        FloatingPointError: The loss stopped being finite.
    """
    from iml.deepfake_checks import check_training

    (x, y), (x_val, y_val) = check_training(model, splits, args)  # e.g. spectra (N, C, H, W) not yet flattened
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    order = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for batch in util.batches(torch.randperm(len(y), generator=order), args.batch_size, f"epoch {epoch}", "images"):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged: the loss became {loss.item()}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        accuracy = evaluate(model, x_val, y_val)[0]
        print(f"epoch {epoch}: training loss {total / len(y):.4f}, validation accuracy {accuracy:.2%}")


@torch.no_grad()
def evaluate(model: nn.Module, spectra: Tensor, labels: Tensor) -> tuple[float, Tensor]:
    """Count right and wrong answers, 500 images at a time.

    Args:
        model: The classifier.
        spectra: Standardized, (N, C*H*W).
        labels: (N,).

    Returns:
        The accuracy and the confusion matrix (2, 2): rows the true class, columns the predicted one.
    """
    from iml.deepfake_checks import check_classifier_data

    check_classifier_data(model, spectra, labels, "evaluate")  # float labels or a spectrum of another size
    predicted = torch.cat([model(batch).argmax(dim=1) for batch in spectra.split(500)])  # (N,)
    confusion = torch.bincount(labels * 2 + predicted, minlength=4).reshape(2, 2).cpu()
    return (confusion.trace() / confusion.sum()).item(), confusion


def detect(args: argparse.Namespace, device: torch.device) -> dict:
    """Run the exercise: spectra, their means, standardization, the nn.Linear classifier, training and test.

    Args:
        args: The parsed command line.
        device: Where the spectra and the classifier live.

    Returns:
        The means (2, C, H, W) and difference of args.eval_split, weights (2, C, H, W) and confusion matrices.
    """
    from iml.deepfake_checks import check_detect

    device = check_detect(args, device)  # the options and the device ("auto": one), before any image is read
    splits = load_split(args.data, (args.train_size, args.val_size, args.test_size), args.skip_unreadable)
    means, difference = mean_spectra(*splits[args.eval_split])
    std, mean = torch.std_mean(splits["train"][0], dim=0, correction=0)  # (C, H, W) each
    std = std.clamp_min(1e-6)  # a coefficient that never varies carries nothing
    splits = {name: (x.sub_(mean).div_(std).flatten(1).to(device), y.to(device)) for name, (x, y) in splits.items()}
    torch.manual_seed(args.seed)
    model = nn.Linear(mean.numel(), 2).to(device)  # (N, C*H*W) -> (N, 2) logits for (real, fake)
    train(model, splits, args)
    confusion = {name: evaluate(model, *splits[name])[1] for name in ("train", "test")}  # (2, 2) each
    return dict(means=means, difference=difference, weights=weight_picture(model, mean.shape), **confusion)


def plot(result: dict, data_label: str, trained_on: str) -> dict:
    """Plot the mean spectra and their difference, and what the weights decide: fake − real, as a spectrum.

    Args:
        result: What `detect` returns: means, difference, weights and the test's confusion matrix.
        data_label: The images of the mean spectra, for the title.
        trained_on: The training images, for the title.

    Returns:
        The matplotlib figures deepfake_spectra.png and deepfake_weights.png by file name.
    """
    from iml.deepfake_plots import mean_maps_figure, weights_figure

    rgb = {key: result[key].float().mean(dim=-3).cpu().numpy() for key in ("means", "difference", "weights")}
    title = f"Mean log spectrum, averaged over RGB, of {data_label} (frequency zero in the centre)"
    spectra = mean_maps_figure(rgb["means"][0], rgb["means"][1], rgb["difference"], "fft", title)
    decision = rgb["weights"][1] - rgb["weights"][0]  # only the difference of the two logits decides
    accuracy = f"test accuracy {(result['test'].trace() / result['test'].sum()).item():.2%}"
    title = f"One nn.Linear on standardized log spectra, {accuracy}\ntrained on {trained_on}"
    return {"deepfake_spectra.png": spectra, "deepfake_weights.png": weights_figure(decision, "fft", title)}


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line.

    Returns:
        The parser; every option's help states its default.
    """
    from iml.cli import add_common_arguments
    from iml.detector import add_data_arguments, add_training_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser, (500, 100, 200), "; the exercise's 67000 / 1000 / 2000: scripts/train.slurm, --fast")
    add_training_arguments(parser)
    parser.add_argument("--fast", action="store_true", help="the fast twin: workers, torch spectra (default: off)")
    add_common_arguments(parser, "deepfake_interpretation")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Check the output and the data before any work, then detect, report and draw.

    Args:
        args: The parsed command line.

    Returns:
        The result of `detect` (or of its fast twin).

    Raises:
        UserError: Training diverged.
    """
    from iml.cli import UserError
    from iml.common import relative
    from iml.detector import fit_fast, format_report, prepare_run
    from iml.outputs import write_figures

    device, data_label, trained_on = prepare_run(args)  # names stand-in data as such
    try:
        result = fit_fast(args, device) if args.fast else detect(args, device)
    except FloatingPointError as error:
        raise UserError(f"{error}; lower --lr and run again.") from None
    print(format_report(result["train"], result["test"]))  # the test's accuracy with its 95 % interval
    written = write_figures(plot(result, data_label, trained_on), args.out, "deepfake_interpretation")  # all or none
    print("\n".join(f"wrote {relative(path)}" for path in written))
    print("further: `python -m iml deepfake-representations`; `python -m iml resampling-study --real DIR --fake DIR`")
    return result


def main() -> None:
    """Run Task 3 from the command line; an error a user can cause ends in one line."""
    from iml.cli import run_main

    run_main(lambda: run(build_parser().parse_args()))


if __name__ == "__main__":
    main()
