"""src/iml/processes.py: worker pools that leave Ctrl-C to the parent and stop when it fails, and
parallel_map, which gives the same results in the same order with any number of workers."""

import signal
import time

import pytest

from iml.processes import parallel_map, worker_pool


def test_worker_pool_workers_leave_interrupts_to_the_parent_and_stop_when_it_fails():
    with worker_pool(2) as pool:
        handlers = [pool.submit(signal.getsignal, number).result() for number in (signal.SIGINT, signal.SIGTERM)]
    assert handlers == [signal.SIG_IGN, signal.SIG_DFL]
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), worker_pool(2) as pool:
        futures = [pool.submit(time.sleep, 30) for _ in range(4)]
        time.sleep(0.5)
        raise KeyboardInterrupt
    assert time.monotonic() - start < 15  # the running jobs were stopped, the others never started
    assert all(future.done() for future in futures)


def square(x):
    return x * x


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_parallel_map_keeps_the_order_of_the_jobs(workers):
    assert list(parallel_map(square, range(50), workers, chunksize=3)) == [x * x for x in range(50)]
