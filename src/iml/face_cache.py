"""The face folders of Task 3 as tensors: every image decoded once into a uint8 cache, split as the exercise splits it.

`load_splits` checks the folder (A_ffhq/ and B_stylegan/, see util.load_folder), decodes the
three splits with `decode_images` in worker processes and returns slices of one cache;
`place_cache` moves the cache to the GPU when it fits there.
"""

import math
from pathlib import Path

import numpy as np
import torch

import util
from iml.common import InputError, relative
from iml.image_files import check_image_folder, folder_problem
from iml.processes import parallel_map
from iml.progress import progress


def decode_chunk(files):
    """Decode a list of files into one uint8 array (n, 128, 128, 3); runs in a worker process."""
    return np.stack([util.read_rgb(path, util.IMAGE_SIZE) for path in files])


def decode_images(files, workers, desc="decoding"):
    """Decode every file once into a uint8 tensor (N, 128, 128, 3), `workers` processes at a time.

    Processes, not threads: opening a PNG runs Python code in PIL that would hold Python's
    global lock. Each worker decodes a chunk of files and sends it back as one array, which
    is copied into the preallocated cache, so the cache is the only copy that stays.
    """
    images = torch.empty((len(files), util.IMAGE_SIZE, util.IMAGE_SIZE, 3), dtype=torch.uint8)
    view = images.numpy()
    chunk = max(16, min(256, math.ceil(len(files) / (4 * max(1, workers)))))
    starts = range(0, len(files), chunk)
    chunks = [files[start : start + chunk] for start in starts]
    with progress(total=len(files), unit="images", desc=desc, leave=False) as bar:
        for block, start in zip(parallel_map(decode_chunk, chunks, workers), starts):
            view[start : start + len(block)] = block
            bar.update(len(block))
    return images


def check_data_folder(data_dir):
    """Raise InputError unless `data_dir` holds A_ffhq/ and B_stylegan/ folders; what is there
    instead (a file, a link loop, a folder without read permission) is named."""
    data_dir = Path(data_dir)
    problem = folder_problem(data_dir)
    if problem == "does not exist":
        raise InputError(f"no image folder at {relative(data_dir)}", hint="ffhq-data-folder")
    if problem is not None:
        raise InputError(f"the image folder {relative(data_dir)} {problem}", hint="ffhq-data-folder")
    for folder in util.SOURCE_FOLDERS:
        if folder_problem(data_dir / folder) == "does not exist":
            raise InputError(f"{relative(data_dir)} has no {folder}/ folder", hint="ffhq-data-layout")
        check_image_folder(data_dir / folder)


def load_splits(data_dir, train_size, val_size, test_size, workers, skip_unreadable=False):
    """Decode the three splits: {"train"|"val"|"test": (uint8 images (N, 128, 128, 3), int64 labels (N,))}.

    Each split holds `*_size` real (label 0) then as many fake (label 1) images. All images are
    decoded in one go into one cache; the splits are slices of it, not copies.
    """
    check_data_folder(data_dir)
    real = util.load_folder(Path(data_dir) / util.REAL_FOLDER, train_size, val_size, test_size, skip_unreadable)
    fake = util.load_folder(Path(data_dir) / util.FAKE_FOLDER, train_size, val_size, test_size, skip_unreadable)
    files = [path for real_files, fake_files in zip(real, fake) for path in (*real_files, *fake_files)]
    cache = decode_images(files, workers, desc="decoding images")
    splits, start = {}, 0
    for name, real_files, fake_files in zip(("train", "val", "test"), real, fake):
        stop = start + len(real_files) + len(fake_files)
        labels = torch.cat([torch.zeros(len(real_files)), torch.ones(len(fake_files))]).long()
        splits[name] = (cache[start:stop], labels)
        start = stop
    return splits


def place_cache(images, device):
    """Move the uint8 cache to the GPU when it takes at most half the free memory there, else keep it on the CPU.

    On the GPU, batches are gathered without a host-to-device copy each time; on the CPU each
    batch is copied over when needed.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if images.numel() <= free // 2:
            return images.to(device)
    return images
