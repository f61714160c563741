"""src/iml/handout.py and src/iml/grade.py: the student version and its grader, tested on real copies.

A fresh handout scores 0 and each of its scripts stops at its first TODO with one line; pasting
one region's solution back gives exactly that group's points; plausible wrong answers (written
below as edits of the solution) lose their group's points. The solution's full marks are
tests/grading/test_exercise.py.
"""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import run_iml

from iml import grade, handout
from iml.common import ROOT

POINTS = {group.check: group.points for group in grade.GROUPS}
# Plausible wrong answers: (group, name, text in the solution region, what a student might write instead).
WRONG_ANSWERS = [
    ("integrate_gradients", "left sum", "torch.arange(1, steps_m + 1,", "torch.arange(0, steps_m,"),
    (
        "integrate_gradients",
        "no (x - x') factor",
        "(x - x_base) * (1 / steps_m) * gradients",
        "(1 / steps_m) * gradients",
    ),
    (
        "integrate_gradients",
        "gradient times input",
        "path = (x_base + k / steps_m * (x - x_base))",
        "path = (x + 0 * k)",
    ),
    ("transform", "fft2 over its default axes", "np.fft.fft2(image_data, axes=(-3, -2))", "np.fft.fft2(image_data)"),
    ("transform", "no logarithm", "np.log(np.abs(", "(np.abs("),
    (
        "mean_spectra",
        "mean over the wrong axis",
        ".mean(dim=0, dtype=torch.float64)",
        ".mean(dim=1, dtype=torch.float64)",
    ),
    ("mean_spectra", "real minus fake", "means[1] - means[0]", "means[0] - means[1]"),
    ("weight_picture", "transposed weights", "model.weight.detach().reshape(", "model.weight.detach().T.reshape("),
    ("forward_pass", "probability instead of the logit", "return logits.gather(", "return logits.softmax(0).gather("),
    ("optimize_input", "descent instead of ascent", "maximize=True)", "maximize=False)"),
    (
        "optimize_input",
        "autograd instead of torch.func.grad",
        "x.grad = get_grads(x, targets)",
        "x.grad = torch.autograd.grad(net(x).gather(1, targets[:, None]).sum(), x)[0]",
    ),
]


def copy_exercise(target):
    """A gradable copy of this repository: src/ and the shipped weights."""
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "data").mkdir()
    shutil.copy2(ROOT / "data" / "weights.pth", target / "data" / "weights.pth")
    return target


def region_of(folder, check):
    """The region of `check`'s function in `folder`'s src/."""
    return next(r for r in handout.all_regions(folder / "src") if r.function == check)


def group(check):
    return next(g for g in grade.GROUPS if g.check == check)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A fresh handout, written by the command as an instructor runs it."""
    out = tmp_path_factory.mktemp("handout") / "exercise"
    done = run_iml("handout", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "6 parts to write" in done.stdout
    return out


def test_handout_holds_the_exercise_and_no_line_of_any_solution(student):
    for path in ("README.md", "data/weights.pth", "requirements.txt", "pyproject.toml", "tests/test_exercise.py"):
        assert (student / path).is_file(), path
    assert sorted(p.name for p in (student / "scripts").glob("*.slurm")) == [
        "input_opt.slurm",
        "integrated_gradients.slurm",
        "train.slurm",
    ]
    regions = handout.all_regions(ROOT / "src")
    secret = handout.solution_lines(ROOT / "src", regions)
    assert len(secret) >= 15  # the check below looks for something
    assert handout.leaks(student, secret) == []
    assert not (student / ".git").exists()
    assert not list(student.rglob("__pycache__"))
    assert handout.all_regions(student / "src") == []
    stubs = sum(
        (student / "src" / f).read_text().count('raise NotImplementedError("TODO: ') for f in handout.EXERCISE_FILES
    )
    assert stubs == len(regions) == 6


def test_the_leak_check_finds_a_solution_line(tmp_path):
    (tmp_path / "notes.txt").write_text("    return np.log(np.abs(np.fft.fft2(image_data, axes=(-3, -2))) + eps)\n")
    secret = handout.solution_lines(ROOT / "src", handout.all_regions(ROOT / "src"))
    assert handout.leaks(tmp_path, secret) == [
        "notes.txt: return np.log(np.abs(np.fft.fft2(image_data, axes=(-3, -2))) + eps)"
    ]


@pytest.mark.parametrize(
    "script, function",
    [
        ("input_opt.py", "optimize_input"),
        ("mnist_integrated.py", "integrate_gradients"),
        ("deepfake_interpretation.py", "transform"),
    ],
)
def test_each_handout_script_stops_at_its_first_todo_in_one_line(student, script, function, tmp_path):
    (student / "data" / "MNIST").mkdir(exist_ok=True)
    shutil.copytree(ROOT / "data" / "MNIST" / "raw", student / "data" / "MNIST" / "raw", dirs_exist_ok=True)
    options = []
    if script.startswith("deepfake"):
        from iml.standin import make_standin

        options = ["--data", str(make_standin(tmp_path / "faces", per_class=4, seed=0, workers=1))]
        options += ["--train-size", "2", "--val-size", "1", "--test-size", "1", "--workers", "1"]
    done = subprocess.run(
        [sys.executable, f"src/{script}", *options, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=student,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {function} in src/{script} is still to write (")
    assert lines[-1].endswith("); complete it there and run again.")


def test_handout_scores_zero_and_writes_gradescope_json(student, tmp_path):
    results = tmp_path / "results.json"
    done = run_iml("grade", student, "--json", results, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and " 0/10" in done.stdout
    data = json.loads(results.read_text())
    assert data["score"] == 0
    assert [t["name"] for t in data["tests"]] == [g.name for g in grade.GROUPS]
    assert all(set(t) == {"name", "score", "max_score", "output"} for t in data["tests"])
    assert all(t["output"].startswith("not written yet (TODO: ") for t in data["tests"])
    assert sum(t["max_score"] for t in data["tests"]) == 10


@pytest.mark.parametrize("check", list(POINTS))
def test_pasting_one_region_back_gives_exactly_that_groups_points(student, check, tmp_path):
    folder = tmp_path / "exercise"
    shutil.copytree(student / "src", folder / "src")
    shutil.copytree(student / "data", folder / "data", symlinks=True)
    solution = region_of(ROOT, check)
    lines = (ROOT / solution.path).read_text().splitlines()[solution.start : solution.stop + 1]
    target = folder / solution.path
    stub = f'{solution.indent}raise NotImplementedError("TODO: '
    text = target.read_text().splitlines()
    index = next(i for i, line in enumerate(text) if line.startswith(stub) and solution.todo in line)
    text[index : index + 1] = lines
    target.write_text("\n".join(text) + "\n")
    results = grade.grade(folder)
    scores = {t["name"]: t["score"] for t in results["tests"]}
    assert scores == {g.name: (g.points if g.check == check else 0) for g in grade.GROUPS}


@pytest.mark.parametrize("check, name, right, wrong", WRONG_ANSWERS, ids=[w[1] for w in WRONG_ANSWERS])
def test_each_wrong_answer_loses_its_groups_points(check, name, right, wrong, tmp_path):
    folder = copy_exercise(tmp_path / "exercise")
    region = region_of(folder, check)
    path = folder / region.path
    lines = path.read_text().splitlines()
    body = "\n".join(lines[region.start : region.stop + 1])
    assert right in body, f"the wrong answer {name!r} no longer matches the solution"
    lines[region.start : region.stop + 1] = body.replace(right, wrong).splitlines()
    path.write_text("\n".join(lines) + "\n")
    (result,) = grade.grade(folder, (group(check),))["tests"]
    assert result["score"] == 0, f"{name}: {result['output']}"


def test_a_crash_or_an_endless_loop_costs_that_group_only(tmp_path):
    folder = copy_exercise(tmp_path / "exercise")
    path = folder / "src" / "deepfake_interpretation.py"
    region = region_of(folder, "transform")
    lines = path.read_text().splitlines()
    lines[region.start : region.stop + 1] = [f"{region.indent}while True:", f"{region.indent}    pass"]
    path.write_text("\n".join(lines) + "\n")
    results = grade.grade(folder, (group("transform"), group("weight_picture")), limit=20)
    loop, other = results["tests"]
    assert loop["score"] == 0 and loop["output"].startswith("stopped after the time limit of 20 s")
    assert other["score"] == 1


def test_handout_refuses_the_repository_and_a_folder_with_files(tmp_path):
    for inside in (ROOT, ROOT / "handout"):
        done = run_iml("handout", "--out", inside)
        assert done.returncode == 1
        assert done.stderr.strip().endswith("is inside the repository .; give a folder outside it.")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = run_iml("handout", "--out", tmp_path / "full")
    assert done.returncode == 1
    assert "already holds files; choose an empty folder, or pass --force to replace it." in done.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
