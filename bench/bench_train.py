"""Training speed of the MNIST CNN: images per second, and time to 99% test accuracy.

    python bench/bench_train.py                        # throughput on this machine, ours vs a DataLoader loop
    python bench/bench_train.py --to-accuracy 0.99     # plus a full run until the test accuracy reaches 99%
    python bench/bench_train.py --device cuda --batch-size 512 --to-accuracy 0.99
    python bench/bench_train.py --train-size 2000 --steps 5 --to-accuracy 0.5 --epochs 1   # a quick check

Throughput: the same optimiser steps fed two ways, alternating `--repeats` times in this process
on the same data, model and optimiser: ours slices mini-batches from tensors already on the
device (as src/mnist_integrated.py's `train` does); the peer is the usual pytorch/examples loop (DataLoader over a
TensorDataset, one item at a time, collated per batch, copied to the device). The ratio is
computed per repeat. --to-accuracy then trains a fresh CNN with the project's own code
(mnist_integrated.train: Adam, one-cycle learning rate) and tests it after every epoch until the test
accuracy reaches the target; the training time (testing excluded) is reported as wall and CPU time.
"""

import argparse
import itertools

import common_bench as bench
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from iml.cli import device_from_argument, learning_rate, non_negative_int, positive_int, run_main
from iml.common import set_seed
from iml.mnist_cnn import evaluate, mnist_splits
from mnist_integrated import train
from models import CNN

PEER = "dataloader"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="batch size (default: 128)")
    parser.add_argument("--steps", type=positive_int, default=60, help="timed optimiser steps per loop (default: 60)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs of each loop (default: 5)")
    parser.add_argument("--lr", type=learning_rate, default=3e-3, help="peak learning rate (default: 0.003)")
    parser.add_argument("--epochs", type=positive_int, default=4, help="epoch budget for --to-accuracy (default: 4)")
    parser.add_argument(
        "--to-accuracy", type=float, default=0.0, help="also train to this test accuracy, e.g. 0.99 (default: off)"
    )
    parser.add_argument(
        "--train-size", type=non_negative_int, default=0, help="training digits, 0 for all 60,000 (default: 0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bench.add_json_argument(parser)
    parser.set_defaults(val_size=0)  # mnist_cnn.mnist_splits: no validation split, train on all digits
    return parser


def batches(images, labels, batch_size):
    """Shuffled mini-batches sliced from tensors on the device, as mnist_integrated.train makes them."""
    for index in torch.randperm(len(images)).to(images.device).split(batch_size):
        yield images[index], labels[index]


def run_steps(model, optimizer, make_loader, steps, device):
    """`steps` optimiser steps on batches from `make_loader()` (restarted when it runs out); returns images seen."""
    seen = 0
    loader = itertools.chain.from_iterable(make_loader() for _ in itertools.count())
    for x, y in itertools.islice(loader, steps):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        seen += len(x)
    return seen


def throughput(args, x_train, y_train, device):
    """Images/s of our loop and the DataLoader loop, alternating; prints and returns them for JSON."""
    set_seed(args.seed)
    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = TensorDataset(x_train.cpu(), y_train.cpu())
    loaders = {
        "ours": lambda: batches(x_train, y_train, args.batch_size),
        PEER: lambda: DataLoader(dataset, batch_size=args.batch_size, shuffle=True, pin_memory=device.type == "cuda"),
    }
    contenders = {name: (lambda m=m, n=2: run_steps(model, optimizer, m, n, device)) for name, m in loaders.items()}
    bench.alternate(contenders, 1, device)  # warm-up: two steps of each
    contenders = {name: (lambda m=m: run_steps(model, optimizer, m, args.steps, device)) for name, m in loaders.items()}
    series, seen = bench.alternate(contenders, args.repeats, device)
    print(
        f"training throughput, {args.steps} steps of {args.batch_size} per loop ({bench.repeats_note(args.repeats)}):"
    )
    results = {}
    for name, s in series.items():
        print(f"  {name + ':':11} {bench.fmt_series(s, seen[name], 'images/s')}")
        results[name] = {**s.summary(), "images_per_s": bench.stats(bench.rates(seen[name], s.wall))}
    wall = bench.ratios(bench.rates(seen["ours"], series["ours"].wall), bench.rates(seen[PEER], series[PEER].wall))
    cpu = bench.ratios(series[PEER].cpu, series["ours"].cpu)
    print(
        f"  images/s ours / DataLoader loop: {bench.fmt(wall, 'x')}; CPU time DataLoader loop / ours: {bench.fmt(cpu, 'x')}"
    )
    results["ratio"] = {"images_per_s": bench.stats(wall), "cpu": bench.stats(cpu)}
    return results


def to_accuracy(args, splits, device):
    """Train a fresh CNN with training.train until the test accuracy reaches the target; returns the numbers."""
    (x_train, y_train), _, (x_test, y_test) = splits
    set_seed(args.seed)
    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = -(-len(x_train) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, epochs=args.epochs, steps_per_epoch=steps)
    wall = cpu = accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        _, timing = bench.measure(lambda e=epoch: train(args, model, (x_train, y_train), scheduler, e), device)
        wall, cpu = wall + timing.wall, cpu + timing.cpu
        accuracy = evaluate(model, x_test, y_test)
        print(f"  epoch {epoch}: {wall:.1f} s wall, {cpu:.1f} s CPU of training, test accuracy {accuracy:.2%}")
        if accuracy >= args.to_accuracy:
            break
    reached = accuracy >= args.to_accuracy
    print(
        f"{'reached' if reached else 'did NOT reach'} {args.to_accuracy:.1%}: test accuracy {accuracy:.2%} after "
        f"{epoch} epoch(s) on {len(x_train):,} digits, {wall:.1f} s wall, {cpu:.1f} s CPU of training (one run)"
    )
    return {
        "target": args.to_accuracy,
        "reached": reached,
        "test_accuracy": accuracy,
        "epochs": epoch,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
    }


def main():
    args = build_parser().parse_args()
    device = device_from_argument(args.device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, batch size {args.batch_size}")
    splits = mnist_splits(args, device)
    results = {"throughput": throughput(args, *splits[0], device)}
    if args.to_accuracy:
        results["to_accuracy"] = to_accuracy(args, splits, device)
    bench.write_json(args.json, "train", args, results, device)


if __name__ == "__main__":
    run_main(main)
