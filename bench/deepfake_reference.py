"""The exercise's original Task 3 approach, as bench/bench_deepfake.py's peer: PIL loading in a
process pool, numpy fft2 on the CPU for the running statistics and again for every batch of every
epoch, a linear layer trained with Adam, validation every epoch.

`reference` runs in a child process of its own (bench_deepfake.in_child) and is timed there.
"""

from pathlib import Path

import common_bench as bench
import numpy as np

from iml.common import get_device
from util import FAKE_FOLDER, IMAGE_SIZE, REAL_FOLDER, load_folder


def reference_load_image(path):
    from PIL import Image

    return np.nan_to_num(np.array(Image.open(path)), posinf=255, neginf=0)


class ReferenceWelford:
    """The reference's running mean and std, per colour channel, in numpy."""

    def __init__(self):
        self.collapsed_axis = None

    def update(self, batch):
        if not self.collapsed_axis:
            self.collapsed_axis = tuple(range(batch.ndim - 1))
            self.count = np.zeros(1)
            self.mean = np.zeros(batch.shape[-1])
            self.m2 = np.zeros(batch.shape[-1])
        self.count += np.prod(batch.shape[:-1])
        delta = batch - self.mean
        self.mean += np.sum(delta / self.count, self.collapsed_axis)
        self.m2 += np.sum(delta * (batch - self.mean), self.collapsed_axis)

    def finalize(self):
        return self.mean, np.sqrt(self.m2 / self.count)


def reference_label(path):
    return 0 if path.parent.name == REAL_FOLDER else 1


def reference_files(data, sizes, images, batch_size):
    """(training batches of paths, validation paths) as the reference script picks them."""
    real = load_folder(Path(data) / REAL_FOLDER, *sizes)
    fake = load_folder(Path(data) / FAKE_FOLDER, *sizes)
    train = np.array(real[0] + fake[0], dtype=object)
    val = np.array(real[1] + fake[1], dtype=object)
    np.random.seed(42)  # noqa: NPY002 - as the reference script
    np.random.shuffle(train)  # noqa: NPY002
    return np.array_split(train, max(1, len(train) // batch_size))[: max(1, images // batch_size)], val


def reference_load(batches, val, workers):
    """Load every batch in a process pool, with the running statistics; (images, labels, mean, std, val set)."""
    from multiprocessing import Pool

    from deepfake_interpretation import transform

    estimator, image_batches, label_batches = ReferenceWelford(), [], []
    with Pool(workers) as pool:
        for paths in batches:
            stack = np.stack(pool.map(reference_load_image, paths))
            image_batches.append(stack)
            label_batches.append(np.array([reference_label(p) for p in paths]))
            estimator.update(transform(stack))
    mean, std = (a.astype(np.float32) for a in estimator.finalize())
    val_images = (transform(np.stack(list(map(reference_load_image, val)))) - mean) / std
    return image_batches, label_batches, mean, std, (val_images, [reference_label(p) for p in val])


def reference_train(image_batches, label_batches, mean, std, val_set, epochs, device):
    """The reference's epochs: a numpy fft2 of every batch each time, validation every epoch; the last accuracy."""
    import torch
    import torch.nn.functional as F

    from deepfake_interpretation import transform

    val_x = torch.tensor(val_set[0], dtype=torch.float32).permute(0, 3, 1, 2).to(device)
    val_y = torch.tensor(val_set[1]).to(device)
    torch.manual_seed(42)
    net = torch.nn.Linear(3 * IMAGE_SIZE * IMAGE_SIZE, 2).to(device)
    optimizer = torch.optim.Adam(net.parameters())
    for _ in range(epochs):
        with torch.no_grad():
            (net(val_x.flatten(1)).argmax(1) == val_y).float().mean().item()
        for stack, labels in zip(image_batches, label_batches):
            x = np.transpose((transform(stack) - mean) / std, [0, 3, 1, 2])
            x = torch.tensor(x, dtype=torch.float32).to(device)
            loss = F.cross_entropy(net(x.flatten(1)), torch.tensor(labels).to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    with torch.no_grad():
        return (net(val_x.flatten(1)).argmax(1) == val_y).float().mean().item()


def reference(queue, data, sizes, epochs, workers, device, images, batch_size=500):
    """Child process: the exercise's original approach on its first `images` training images."""
    device = get_device(device)
    batches, val = reference_files(data, sizes, images, batch_size)

    def pipeline():
        loaded = reference_load(batches, val, workers)
        return reference_train(*loaded, epochs, device)

    accuracy, timing = bench.measure(pipeline, device)
    queue.put(
        {
            "train_images": sum(len(b) for b in batches),
            "train_seconds": timing.wall,
            "train_cpu_seconds": timing.cpu,
            "val_accuracy": accuracy,
            **bench.peak_memory(),
        }
    )
