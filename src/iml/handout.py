"""``python -m iml handout --out DIR``: the student version of the exercise, made from this solution.

One source for both versions, as nbgrader does it for notebooks: in the five exercise files each
part a student writes stands between two comment lines,

    # TODO: what to compute, which function to use, the equation   (stays in both versions)
    ### BEGIN SOLUTION
    ...the solution...
    ### END SOLUTION

and the handout replaces each region by ``raise NotImplementedError("TODO: <the TODO line>")`` at
the region's indentation. The handout is a complete repository (the student README, the stubbed
scripts, util and models, the data and grading commands of this package, the shipped weights, the
SLURM scripts and the requirements) in which no line of any solution region appears anywhere.
"""

import argparse
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from iml.cli import UserError, check_output_folder, path_argument
from iml.common import ROOT, folder_in_place, relative

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_FILES = ("input_opt.py", "mnist_integrated.py", "deepfake_interpretation.py", "util.py", "models.py")
# What the handout holds besides the stubbed exercise files: the package's data, command-line and
# grading modules (not its fast twins, checks or studies, which would give the solutions away).
PACKAGE_MODULES = (
    "__init__.py", "__main__.py", "cli.py", "common.py", "outputs.py", "checkpoint_files.py", "file_limits.py",
    "mnist_data.py", "image_files.py", "mnist_cnn.py", "attribution.py", "detector.py", "face_cache.py", "spectra.py", "processes.py", "progress.py",
    "deepfake_plots.py", "integrated_plots.py", "input_opt_plots.py", "data_cli.py", "download.py", "standin.py",
    "ffhq_import.py", "handout.py", "grade.py", "grading_checks.py", "validation.py", "deepfake_checks.py",
)  # fmt: skip
COPIED = ("data/weights.pth", "requirements.txt", "requirements-dev.txt", "pyproject.toml", ".gitignore")
COPIED_FOLDERS = ("scripts",)
EMPTY_FOLDERS = ("figures", "logs", "data")
STUDENT_README = Path(__file__).with_name("student_readme.md")
TODO = re.compile(r"#\s*TODO:?\s*(?P<text>.*)")
# Lines this short or this common ("return x", ")") say nothing about a solution; longer ones must not leak.
TRIVIAL = re.compile(r"^(\)|\]|\}|pass|else:|try:|return|return \w+|\w+ = \[\]|break|continue)?,?$")


@dataclass(frozen=True)
class Region:
    """One solution region of an exercise file: lines ``start``..``stop`` (0-based, both delimiters included)."""

    path: str
    function: str
    start: int
    stop: int
    indent: str
    todo: str


def enclosing_function(lines: list[str], index: int) -> str:
    """The name of the innermost ``def`` above line ``index`` that is less indented than it, or "<module>"."""
    depth = len(lines[index]) - len(lines[index].lstrip())
    for line in reversed(lines[:index]):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("def ") and indent < depth:
            return stripped[4:].split("(")[0]
        if stripped and indent < depth and not stripped.startswith(("#", ")", "]", '"', "'")):
            depth = min(depth, indent)
    return "<module>"


def find_regions(path: Path, name: str) -> list[Region]:
    """The solution regions of one file; raises ValueError for an unmatched or nested delimiter."""
    lines = path.read_text(encoding="utf-8").splitlines()
    regions, start = [], None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped == BEGIN:
            if start is not None:
                raise ValueError(f"{name}:{number + 1}: {BEGIN} inside the region opened at line {start + 1}")
            start = number
        elif stripped == END:
            if start is None:
                raise ValueError(f"{name}:{number + 1}: {END} without {BEGIN}")
            regions.append(make_region(lines, name, start, number))
            start = None
    if start is not None:
        raise ValueError(f"{name}:{start + 1}: {BEGIN} is never closed by {END}")
    return regions


def make_region(lines: list[str], name: str, start: int, stop: int) -> Region:
    """The Region between lines ``start`` and ``stop``, with the TODO comment (one or more lines) right above it."""
    above = start
    while above > 0 and lines[above - 1].strip().startswith("#"):
        above -= 1
    comments = [line.strip().lstrip("#").strip() for line in lines[above:start]]
    first = next((i for i, line in enumerate(lines[above:start]) if TODO.match(line.strip())), None)
    todo = "complete this part"
    if first is not None:
        todo = " ".join([TODO.match(lines[above + first].strip())["text"], *comments[first + 1 :]]).strip()
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    return Region(name, enclosing_function(lines, start), start, stop, indent, todo)


def all_regions(src: Path) -> list[Region]:
    """Every solution region of the five exercise files under ``src``, in file order."""
    return [region for name in EXERCISE_FILES for region in find_regions(src / name, f"src/{name}")]


def stubbed(text: str, regions: list[Region]) -> str:
    """``text`` with each region replaced by one ``raise NotImplementedError("TODO: ...")`` line."""
    lines = text.splitlines()
    for region in sorted(regions, key=lambda r: r.start, reverse=True):
        message = f"TODO: {region.todo}".replace("\\", "\\\\").replace('"', '\\"')
        lines[region.start : region.stop + 1] = [f'{region.indent}raise NotImplementedError("{message}")']
    return "\n".join(lines) + "\n"


def solution_lines(src: Path, regions: list[Region]) -> set[str]:
    """The stripped, non-trivial lines inside the regions: none of them may appear in the handout."""
    found = set()
    for region in regions:
        lines = (src.parent / region.path).read_text(encoding="utf-8").splitlines()
        for line in lines[region.start + 1 : region.stop]:
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and not TRIVIAL.match(stripped):
                found.add(stripped)
    return found


def leaks(folder: Path, secret: set[str]) -> list[str]:
    """``file: line`` for every line of a solution region found in any file under ``folder``."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        lines = {line.strip() for line in text.splitlines()}
        found += [f"{path.relative_to(folder)}: {line}" for line in sorted(secret) if line in lines]
        if b"\0" in data:  # a binary file: look for the bytes anywhere
            found += [f"{path.relative_to(folder)}: {line}" for line in sorted(secret) if line.encode() in data]
    return found


def write_handout(out: Path, root: Path = ROOT) -> list[Region]:
    """Write the student version of the repository ``root`` into ``out``; returns the regions replaced.

    Raises:
        UserError: when a solution line would still be in the handout (nothing is written then).
    """
    src = root / "src"
    regions = all_regions(src)
    secret = solution_lines(src, regions)
    with folder_in_place(out) as tmp:
        (tmp / "src" / "iml").mkdir(parents=True)
        for name in EXERCISE_FILES:
            own = [region for region in regions if region.path == f"src/{name}"]
            (tmp / "src" / name).write_text(stubbed((src / name).read_text(encoding="utf-8"), own), encoding="utf-8")
        for name in PACKAGE_MODULES:
            if (src / "iml" / name).is_file():
                shutil.copy2(src / "iml" / name, tmp / "src" / "iml" / name)
        shutil.copy2(STUDENT_README, tmp / "src" / "iml" / STUDENT_README.name)
        shutil.copy2(STUDENT_README, tmp / "README.md")
        copy_rest(root, tmp)
        if found := leaks(tmp, secret):
            raise UserError(
                f"the handout would still hold solution lines ({'; '.join(found[:3])}); nothing was written."
            )
    return regions


def copy_rest(root: Path, tmp: Path) -> None:
    """Copy the weights, requirements, SLURM scripts and the grading tests; make the empty folders."""
    for name in COPIED:
        if (root / name).is_file():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, tmp / name)
    for name in COPIED_FOLDERS:
        shutil.copytree(root / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in EMPTY_FOLDERS:
        (tmp / name).mkdir(exist_ok=True)
        (tmp / name / ".gitkeep").touch()
    (tmp / "tests").mkdir()
    shutil.copy2(root / "tests" / "grading" / "test_exercise.py", tmp / "tests" / "test_exercise.py")


def check_out(out: Path, force: bool, root: Path = ROOT) -> None:
    """Refuse an --out that is the repository or lies inside it, or holds files (unless ``force``).

    Raises:
        UserError: for each of those, with what to do instead.
    """
    resolved = Path(os.path.realpath(out))
    if resolved == root.resolve() or resolved.is_relative_to(root.resolve()):
        raise UserError(f"--out {relative(out)} is inside the repository {relative(root)}; give a folder outside it.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(
            f"--out {relative(out)} already holds files; choose an empty folder, or pass --force to replace it."
        )
    check_output_folder(out)


def main(argv: list[str]) -> None:
    """Run ``python -m iml handout``: parse ``argv``, check --out, write the handout, say what it holds."""
    parser = argparse.ArgumentParser(prog="python -m iml handout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=path_argument, required=True, help="folder to write, outside the repository")
    parser.add_argument("--force", action="store_true", help="replace --out if it holds files (default: refuse)")
    args = parser.parse_args(argv)
    check_out(args.out, args.force)
    regions = write_handout(args.out)
    print(f"wrote the student version to {relative(args.out)}: {len(regions)} parts to write")
    for region in regions:
        print(f"  {region.path}: {region.function}: {region.todo}")
    print(
        f"students run `python -m iml grade` there to check their work; `python -m iml grade {relative(args.out)}` grades it."
    )
