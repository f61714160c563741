"""How the default --weight-decay of Task 3 was chosen: validation accuracy on the shared faces.

    python bench/select_weight_decay.py                      # ../shared/data/faces, the study's split
    python bench/select_weight_decay.py --json out.json

The faces are imported once for every filter pair of the resampling study; for each pair and each
weight decay the exercise's detector (log |FFT2|, one nn.Linear, Adam, the script's defaults
otherwise) is trained on the training split with three seeds and scored on the validation split.
The default is the weight decay with the highest validation accuracy averaged over pairs and
seeds (ties: the smallest).
Test accuracy is printed for information only; it played no part in the choice.
"""

import argparse
import os

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in a table of results
import tempfile
from pathlib import Path

import common_bench as bench  # noqa: F401  (puts src/ on the import path)
import torch

from iml import detector, ffhq_import
from iml.common import ROOT, atomic_path
from iml.face_cache import load_splits
from iml.resampling_study import COMBINATIONS, build_parser

FACES = ROOT.parent / "shared" / "data" / "faces"
SEEDS = (0, 1, 2)  # 40 validation images per pair are few: average over three initialisations
GRID = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 3.0, 10.0, 30.0, 100.0)


def accuracies(args, splits, weight_decay):
    """(validation, test) accuracy of the detector trained with `weight_decay` on `splits`, each a mean over SEEDS."""
    val, test = [], []
    for seed in SEEDS:
        settings = argparse.Namespace(**{**vars(args), "weight_decay": weight_decay, "seed": seed})
        model, val_accuracy = detector.fit_detector(settings, splits, "fft", torch.device("cpu"), log=lambda line: None)
        test_accuracy, _ = detector.evaluate(model, *splits["test"], "fft", torch.device("cpu"), args.batch_size)
        val.append(val_accuracy)
        test.append(test_accuracy)
    return sum(val) / len(val), sum(test) / len(test)


def print_table(args, table):
    """Print validation / test accuracy per pair and weight decay; returns (best weight decay, its mean validation accuracy)."""
    print(
        f"\nvalidation accuracy ({args.val_size} per class) and test accuracy ({args.test_size} per class), "
        f"means over seeds {SEEDS}, epochs {args.epochs}, batch {args.batch_size}, lr {args.lr}"
    )
    print(f"{'weight decay':<14}" + "".join(f"{pair:>18}" for pair in table) + f"{'mean val':>10}{'mean test':>10}")
    best = None
    for wd in GRID:
        cells = [table[pair][str(wd)] for pair in table]
        mean_val = sum(v for v, _ in cells) / len(cells)
        mean_test = sum(t for _, t in cells) / len(cells)
        print(
            f"{wd:<14g}" + "".join(f"{v:>9.1%} /{t:>6.1%}" for v, t in cells) + f"{mean_val:>10.1%}{mean_test:>10.1%}"
        )
        if best is None or mean_val > best[1]:
            best = (wd, mean_val)
    print(f"highest mean validation accuracy: weight decay {best[0]:g} ({best[1]:.1%})")
    return best


def main():
    parser = build_parser()  # the study's options and split
    parser.prog = "bench/select_weight_decay.py"
    parser.add_argument("--faces", type=Path, default=FACES, help=f"folder with real/ and fake/ (default: {FACES})")
    parser.add_argument("--json", type=Path, help="also write the accuracies to this JSON file")
    args = parser.parse_args()
    table = {}
    with tempfile.TemporaryDirectory() as workdir:
        for real, fake in COMBINATIONS:
            folder = Path(workdir) / f"{real}-{fake}"
            ffhq_import.import_faces(
                args.faces / "real",
                args.faces / "fake",
                folder,
                real_resample=real,
                fake_resample=fake,
                workers=args.workers,
            )
            splits = load_splits(folder, args.train_size, args.val_size, args.test_size, args.workers)
            table[f"{real}/{fake}"] = {str(wd): accuracies(args, splits, wd) for wd in GRID}
            print(
                f"{real}/{fake}: "
                + ", ".join(f"{wd:g}: {v:.1%}" for wd, (v, _) in zip(GRID, table[f"{real}/{fake}"].values())),
                flush=True,
            )
    best = print_table(args, table)
    if args.json:
        import json

        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"grid": GRID, "accuracies": table, "best": best[0]}, indent=1))


if __name__ == "__main__":
    main()
