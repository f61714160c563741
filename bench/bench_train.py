"""Training speed of the MNIST CNN: images per second, and time to 99% test accuracy.

    python bench/bench_train.py                        # throughput on this machine, ours vs a DataLoader loop
    python bench/bench_train.py --to-accuracy 0.99     # plus a full run until the test accuracy reaches 99%
    python bench/bench_train.py --device cuda --batch-size 512 --to-accuracy 0.99

The peer is the usual pytorch/examples loop (DataLoader over a TensorDataset, one item at a
time, collated per batch), run in the same process on the same data, model and optimiser.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mnist_integrated import batches, test, to_float_images  # noqa: E402
from models import CNN  # noqa: E402
from util import get_device, get_mnist_test_data, get_mnist_train_data, set_seed  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, optimizer, loader, steps, device):
    """Seconds for `steps` optimiser steps over `loader` (after two warm-up steps)."""
    seen, start = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 2:
            sync(device)
            start, seen = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        seen += len(x)
        if i == steps + 1:
            break
    sync(device)
    return seen / (time.perf_counter() - start)


def to_accuracy(x_train, y_train, x_test, y_test, args, device):
    """Train with the project's schedule until test accuracy >= target; (seconds, epochs, accuracy)."""
    set_seed(args.seed)
    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = math.ceil(len(x_train) / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps
    )
    generator = torch.Generator().manual_seed(args.seed)
    seconds, accuracy = 0.0, 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        sync(device)
        start = time.perf_counter()
        for x, y in batches(x_train, y_train, args.batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
        sync(device)
        seconds += time.perf_counter() - start
        accuracy = test(model, x_test, y_test)
        print(f"  epoch {epoch}: {seconds:.1f} s of training, test accuracy {accuracy:.2%}")
        if accuracy >= args.to_accuracy:
            break
    return seconds, epoch, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--steps", type=int, default=60, help="timed optimiser steps per loop (default: 60)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 0.003)")
    parser.add_argument("--epochs", type=int, default=4, help="epoch budget for --to-accuracy (default: 4)")
    parser.add_argument(
        "--to-accuracy", type=float, default=0.0, help="also train to this test accuracy (default: off)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    device = get_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, batch size {args.batch_size}")

    train_images, train_labels = get_mnist_train_data()
    test_images, test_labels = get_mnist_test_data()
    x_train, y_train = to_float_images(train_images, device), train_labels.to(device)

    set_seed(args.seed)
    model = CNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ours = time_steps(model, optimizer, batches(x_train, y_train, args.batch_size, shuffle=True), args.steps, device)
    dataset = TensorDataset(to_float_images(train_images, "cpu"), train_labels)
    peer_loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, pin_memory=device.type == "cuda")
    peer = time_steps(model, optimizer, peer_loader, args.steps, device)
    print(
        f"training throughput: ours {ours:,.0f} images/s, DataLoader loop {peer:,.0f} images/s, ratio {ours / peer:.2f}x"
    )

    if args.to_accuracy:
        x_test, y_test = to_float_images(test_images, device), test_labels.to(device)
        seconds, epochs, accuracy = to_accuracy(x_train, y_train, x_test, y_test, args, device)
        reached = "reached" if accuracy >= args.to_accuracy else "did NOT reach"
        print(
            f"{reached} {args.to_accuracy:.1%}: test accuracy {accuracy:.2%} after {epochs} epochs, {seconds:.1f} s of training"
        )


if __name__ == "__main__":
    main()
