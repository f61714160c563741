import pytest
import torch

import util

# The tests share two CPU cores; more threads than cores only adds contention.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def mnist_test():
    """The real 10,000 MNIST test digits as (uint8 images, int64 labels), fetched once."""
    return util.get_mnist_test_data()


@pytest.fixture(scope="session")
def mnist_train():
    """The real 60,000 MNIST training digits as (uint8 images, int64 labels)."""
    return util.get_mnist_train_data()


@pytest.fixture(scope="session")
def shipped_model():
    """The CNN with the shipped data/weights.pth, in eval mode on the CPU."""
    from models import load_cnn

    return load_cnn(util.WEIGHTS_PATH)
