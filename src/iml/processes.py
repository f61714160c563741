"""Worker processes for the data work (decoding, converting and writing images): they leave Ctrl-C to
the parent, which stops them at once, and they start by forking where the platform allows.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys


def ignore_interrupts():
    """Initializer for worker processes (ProcessPoolExecutor(initializer=ignore_interrupts)).

    Ctrl-C reaches the whole process group; the workers ignore it, so that only the parent handles
    it, once, and stops them (`worker_pool`). SIGTERM (SLURM's scancel signals every process of a
    job) ends a worker silently, instead of raising the exception the parent's handler raises.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def worker_pool(workers, mp_context=None):
    """A ProcessPoolExecutor of `workers` processes that leave Ctrl-C to the parent (`ignore_interrupts`).

    When the block raises (Ctrl-C, SIGTERM or an error), the jobs not yet started are cancelled
    and the workers are killed at once, their results no longer wanted; so the caller's cleanup
    runs after they stopped writing, and without waiting for their current jobs.
    """
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=mp_context, initializer=ignore_interrupts)
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def parallel_map(function, jobs, workers, chunksize=1):
    """Yield function(job) for every job, in order, from up to `workers` worker processes.

    With one worker (or one job) it runs here. The workers are forked where the platform allows:
    they start at once with the caller's modules loaded (spawning would import torch again in
    each), which is safe as long as `function` uses only plain Python, numpy and PIL. The pool
    (`worker_pool`) lives while the generator is consumed; more workers than cores only compete.
    """
    jobs = list(jobs)
    workers = min(workers, len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        yield from map(function, jobs)
        return
    context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
    with worker_pool(workers, mp_context=context) as pool:
        yield from pool.map(function, jobs, chunksize=chunksize)
