"""Progress bars for the loops that can run longer than a few seconds: one helper, `progress`.

On a terminal the bar is tqdm's, redrawn in place. Where stderr is not a terminal (a SLURM log,
a pipe) the bar is written as whole lines, the first after LOG_INTERVAL seconds and then at most
one every LOG_INTERVAL seconds, plus the last, so that a log shows how far a long job has come
and stays short; a loop that ends sooner writes nothing there. The environment variable
IML_PROGRESS_INTERVAL sets that interval in seconds (0: a line at every update); TQDM_DISABLE=1
hides the bars.

`optimizer_steps` counts the steps of a loop that cannot hold a bar; `bars_cleared_on_error` clears
the bars an error leaves open, so that the error's one line stands alone.
"""

import contextlib
import os
import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between the lines of a bar where stderr is not a terminal
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class LogLines:
    """The stream of a bar outside a terminal: each redraw becomes one line; a cleared bar, or a count
    already written (the last update, then the close), writes nothing."""

    def __init__(self, stream):
        self.stream, self.last = stream, None
        self.encoding = getattr(stream, "encoding", None)

    def write(self, text):
        line = text.replace("\x1b[A", "").replace("\r", "").replace("\n", "").rstrip()
        count = line.split(" [")[0]  # the bar without its times
        if line and count != self.last:
            sys.stdout.flush()  # where stdout and stderr share a log, what was printed before comes first
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last = count

    def flush(self):
        self.stream.flush()


def log_interval():
    """The seconds between two lines of a bar outside a terminal: IML_PROGRESS_INTERVAL, else LOG_INTERVAL."""
    try:
        return max(0.0, float(os.environ.get("IML_PROGRESS_INTERVAL", LOG_INTERVAL)))
    except ValueError:
        return LOG_INTERVAL


def progress(iterable=None, *, total=None, unit, desc, leave=True):
    """A tqdm bar on stderr over `iterable` (or updated by hand) with a total and an estimate of the time left.

    total: the count of `unit`s, e.g. 20 digits (None: len(iterable)); desc: what runs. A bar inside
    another loop passes leave=False, so that on a terminal it disappears when done. Counts of 100,000
    and more are shown as 1.2M. Returns the tqdm object: iterate over it, or `update(n)` it in a `with`.
    """
    total = len(iterable) if total is None else total
    stream = sys.stderr
    settings = dict(total=total, unit=unit, desc=desc, leave=leave, unit_scale=total >= 100_000, bar_format=BAR_FORMAT)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, file=stream, dynamic_ncols=True, **settings)
    interval = log_interval()
    return tqdm(iterable, file=LogLines(stream), mininterval=interval, maxinterval=interval, delay=interval, **settings)


def write_line(text, stream=None):
    """Print `text` as a line on `stream` (None: stdout) and flush it, beside open bars: on a terminal
    they are cleared first and drawn again below, so that the line does not run into one."""
    stream = sys.stdout if stream is None else stream
    tqdm.write(text, file=stream)
    stream.flush()


@contextlib.contextmanager
def optimizer_steps(total, desc):
    """A bar in steps that every `torch.optim` optimizer's step advances while the block runs.

    For a loop that cannot hold a bar itself (the exercise's own, which students write): the
    optimizer steps are counted by torch's global step hook, removed again on the way out.
    """
    from torch.optim.optimizer import register_optimizer_step_post_hook

    with progress(total=total, unit="steps", desc=desc) as bar:
        hook = register_optimizer_step_post_hook(lambda *_: bar.update())
        try:
            yield bar
        finally:
            hook.remove()


@contextlib.contextmanager
def bars_cleared_on_error():
    """Clear, on the way out of an error or Ctrl-C, every bar still open, so that no half-drawn bar
    shares a line with the message that follows."""
    try:
        yield
    except BaseException:
        for bar in list(tqdm._instances):
            bar.leave = False
            bar.close()
        raise
