"""What the benchmarks share: src/ on the import path, timing with CPU time, median and range, JSON.

Every timed thing is reported as wall time and CPU time (user + system, all threads, of this
process and of its finished child processes): on a shared machine the CPU time is steadier. A
thing timed several times is reported as the median and the range [min-max] over the repeats,
never the best alone. A ratio against a peer is computed per repeat, from runs that alternate in
the same process, and reported the same way.

Import it first, as a plain `import common_bench as bench`: it puts src/ on sys.path.
"""

import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from iml.common import atomic_path, default_workers, relative, synchronize  # noqa: E402


def cpu_seconds():
    """CPU seconds so far of this process (all threads) and of its children that have been waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Timing:
    """Wall and CPU seconds of one timed call."""

    wall: float
    cpu: float


def measure(function, device=None):
    """(value of `function()`, its Timing); with a `device`, its queued GPU work is waited for on both sides."""
    if device is not None:
        synchronize(device)
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = function()
    if device is not None:
        synchronize(device)
    return value, Timing(time.perf_counter() - wall, cpu_seconds() - cpu)


@dataclass
class Series:
    """The Timings of one contender over the repeats, in order."""

    wall: list = field(default_factory=list)
    cpu: list = field(default_factory=list)

    def add(self, timing):
        self.wall.append(timing.wall)
        self.cpu.append(timing.cpu)

    def summary(self):
        """{"wall_s": stats, "cpu_s": stats} for JSON."""
        return {"wall_s": stats(self.wall), "cpu_s": stats(self.cpu)}


def alternate(contenders, repeats, device=None, on_each=None, between=None):
    """Time each function of `contenders` {name: function} once per repeat, in turn, `repeats` times.

    Returns ({name: Series}, {name: value of its last call}). Untimed: `on_each(name, timing)`
    after every call, `between(values)` after every round but the last (e.g. to delete its output).
    """
    series, values = {name: Series() for name in contenders}, {}
    for repeat in range(repeats):
        for name, function in contenders.items():
            values[name], timing = measure(function, device)
            series[name].add(timing)
            if on_each is not None:
                on_each(name, timing)
        if between is not None and repeat < repeats - 1:
            between(values)
    return series, values


def ratios(numerators, denominators):
    """Per-repeat quotients numerators[i] / denominators[i] (e.g. peer seconds / our seconds)."""
    return [n / max(d, 1e-12) for n, d in zip(numerators, denominators, strict=True)]


def rates(count, seconds):
    """Per-repeat rates count / seconds[i]."""
    return [count / max(s, 1e-12) for s in seconds]


def stats(values):
    """{"median", "min", "max", "n", "values"} of a non-empty list of numbers."""
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def fmt(values, unit="", spec=".2f"):
    """'median unit [min-max]' of a list of numbers (or a stats dict); a single value without a range."""
    s = values if isinstance(values, dict) else stats(values)
    unit = f" {unit}" if unit not in ("", "x") else unit
    if s["n"] == 1:
        return f"{s['median']:{spec}}{unit}"
    return f"{s['median']:{spec}}{unit} [{s['min']:{spec}}-{s['max']:{spec}}]"


def fmt_series(series, count=None, unit="items/s", spec=",.0f"):
    """'wall ... s [..], CPU ... s [..]' of a Series, with the rate count / wall when `count` is given."""
    text = f"wall {fmt(series.wall, 's')}, CPU {fmt(series.cpu, 's')}"
    if count is not None:
        text = f"{fmt(rates(count, series.wall), unit, spec)}; {text}"
    return text


def repeats_note(repeats, alternating=True):
    """The phrase that says how numbers over repeats are shown."""
    if repeats == 1:
        return "one run"
    return f"median [min-max] over {repeats}{' alternating' if alternating else ''} repeats"


def peak_memory():
    """{"peak": this process's, "worker_peak": its largest finished child's} peak resident memory in bytes.

    On Linux the own peak is VmHWM of this program: getrusage's would include the parent's memory
    at the fork that started this interpreter, which survives exec. Linux reports KiB.
    """
    scale = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    status = Path("/proc/self/status")
    if status.exists():
        own = next(
            (int(line.split()[1]) * 1024 for line in status.read_text().splitlines() if line.startswith("VmHWM:")), own
        )
    return {"peak": own, "worker_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale}


def add_json_argument(parser):
    """The --json PATH option every benchmark has."""
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the numbers as a JSON object to this file (default: off)"
    )


def environment(device=None):
    """The machine a benchmark ran on, for its JSON."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cores": os.cpu_count(),
        "usable_cores": default_workers(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_json(path, benchmark, args, results, device=None):
    """Write {"benchmark", "argv", "args", "environment", "results"} to `path` atomically (None: nothing)."""
    if path is None:
        return
    payload = {
        "benchmark": benchmark,
        "argv": sys.argv[1:],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment(device),
        "results": results,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {relative(path)}")
