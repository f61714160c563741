"""``python -m iml grade [DIR] [--json FILE]``: grade an exercise folder, one test group per solution region.

Each group checks one part a student writes against an independent reference (Captum for
Integrated Gradients, numpy for the spectra, a direct computation for the means) in a fresh
Python process with a time limit, so that an endless loop or a crash costs that group only. The
student's code is imported from DIR/src; the checks come from this package. With --json the
result is written in Gradescope's format, ``{"score": s, "tests": [{"name", "score", "max_score",
"output"}]}``, which course platforms read.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from iml.cli import UserError, int_range, path_argument
from iml.common import ROOT, atomic_path, relative

PACKAGE_SRC = Path(__file__).resolve().parents[1]
TIME_LIMIT = 90  # seconds per group; the solution needs a few


@dataclass(frozen=True)
class Group:
    """One graded part: ``check`` names the function in iml.grading_checks that tests it."""

    task: str
    function: str
    points: int
    check: str

    @property
    def name(self) -> str:
        """The group's name as course platforms show it: task and function."""
        return f"{self.task}: {self.function}"


GROUPS = (
    Group("Task 1", "input_opt.make_forward_pass", 1, "forward_pass"),
    Group("Task 1", "input_opt.optimize_input", 2, "optimize_input"),
    Group("Task 2", "mnist_integrated.integrate_gradients", 4, "integrate_gradients"),
    Group("Task 3", "deepfake_interpretation.transform", 1, "transform"),
    Group("Task 3", "deepfake_interpretation.mean_spectra", 1, "mean_spectra"),
    Group("Task 3", "deepfake_interpretation.weight_picture", 1, "weight_picture"),
)

# The child process: our checks first, then the student's src/ in front, so that util, models and
# the scripts are the student's while iml stays this package's.
CHILD = """
import json, sys
sys.path.insert(0, {package!r})
from iml import grading_checks
sys.path.insert(0, {src!r})
print(json.dumps(grading_checks.run({check!r}, {root!r})))
"""


def run_group(group: Group, folder: Path, limit: float = TIME_LIMIT) -> tuple[bool, str]:
    """Run one group's check on ``folder`` in a fresh process; (passed, one line saying why not)."""
    code = CHILD.format(package=str(PACKAGE_SRC), src=str(folder / "src"), check=group.check, root=str(folder))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=limit, env=env, cwd=folder
        )
    except subprocess.TimeoutExpired:
        return False, f"stopped after the time limit of {limit:g} s (an endless loop, or far too slow)"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"crashed: {last}"
    result = json.loads(lines[-1])
    return bool(result["passed"]), str(result["message"])


def graded(group: Group, folder: Path, limit: float) -> dict:
    """One test entry of Gradescope's format for ``group``: name, score, max_score, output (with the time)."""
    start = time.perf_counter()
    passed, message = run_group(group, folder, limit)
    output = ("passed" if passed else message) + f" ({time.perf_counter() - start:.1f} s)"
    return {"name": group.name, "score": group.points if passed else 0, "max_score": group.points, "output": output}


def grade(folder: Path, groups: tuple[Group, ...] = GROUPS, limit: float = TIME_LIMIT, jobs: int = 2) -> dict:
    """Grade ``folder``, ``jobs`` groups at a time, each in its own process; Gradescope's results dict."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # threads only wait for the processes
        tests = list(pool.map(lambda group: graded(group, folder, limit), groups))
    return {"score": sum(test["score"] for test in tests), "tests": tests}


def format_table(results: dict) -> str:
    """The results as a table: task and function, points, and passed or the first failing check."""
    width = max(len(test["name"]) for test in results["tests"])
    lines = [f"{'part':<{width}}  points  result"]
    for test in results["tests"]:
        points = f"{test['score']}/{test['max_score']}"
        lines.append(f"{test['name']:<{width}}  {points:>6}  {test['output']}")
    total = sum(test["max_score"] for test in results["tests"])
    lines.append(f"{'total':<{width}}  {results['score']:>3}/{total:<2}")
    return "\n".join(lines)


def check_folder(folder: Path) -> None:
    """Refuse a folder that holds no exercise (no src/mnist_integrated.py).

    Raises:
        UserError: naming the folder and what it must hold.
    """
    if not (folder / "src" / "mnist_integrated.py").is_file():
        raise UserError(
            f"{relative(folder)} holds no exercise (no src/mnist_integrated.py); give the folder of a handout "
            "or of this repository."
        )


def main(argv: list[str]) -> None:
    """Run ``python -m iml grade``: grade the folder, print the table, write --json if asked."""
    parser = argparse.ArgumentParser(prog="python -m iml grade", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", nargs="?", type=path_argument, default=ROOT, help="exercise folder (default: this repository)"
    )
    parser.add_argument("--json", type=path_argument, help="write Gradescope's results.json format here")
    parser.add_argument("--jobs", type=int_range(1, 64), default=2, help="groups graded at once, 1-64 (default: 2)")
    args = parser.parse_args(argv)
    check_folder(args.folder)
    results = grade(args.folder.resolve(), jobs=args.jobs)
    print(format_table(results))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {relative(args.json)}")
