"""The packaging: pyproject.toml and the requirements files say the same, and `python -m iml` (the `iml`
command of `pip install -e .`) lists every command it has."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from iml.__main__ import COMMANDS
from iml.common import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

EXERCISE = ["input_opt", "mnist_integrated", "deepfake_interpretation", "util", "models"]


@pytest.fixture(scope="module")
def pyproject():
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def requirement_lines(name):
    """The requirements of a requirements file: its lines without comments, blanks and spaces."""
    lines = (re.sub(r"\s+#.*|^#.*", "", line).strip() for line in (ROOT / name).read_text().splitlines())
    return [line.replace(" ", "") for line in lines if line]


def normalized(requirements):
    return sorted(requirement.replace(" ", "") for requirement in requirements)


def test_requirement_lines_are_read():
    lines = requirement_lines("requirements.txt")
    assert lines and all(not line.startswith("#") for line in lines)
    assert any(line.startswith("torch>=") for line in lines)


def test_project_dependencies_equal_requirements_txt(pyproject):
    assert normalized(pyproject["project"]["dependencies"]) == sorted(requirement_lines("requirements.txt"))


def test_requirements_dev_includes_requirements_txt_and_equals_the_dev_extra(pyproject):
    lines = requirement_lines("requirements-dev.txt")
    assert "-rrequirements.txt" in lines, "requirements-dev.txt does not include requirements.txt (-r requirements.txt)"
    rest = [line for line in lines if not line.startswith("-r")]
    assert normalized(pyproject["project"]["optional-dependencies"]["dev"]) == sorted(rest)


def test_dev_tools_include_the_courses_lint(pyproject):
    names = {re.split(r"[<>=!~\[;]", line)[0].lower() for line in pyproject["project"]["optional-dependencies"]["dev"]}
    lint = {"flake8", "flake8-docstrings", "darglint", "pep8-naming", "flake8-bugbear", "flake8-broken-line"}
    assert lint | {"ruff", "mypy", "pytest"} <= names


def test_console_script_and_modules(pyproject):
    assert pyproject["project"]["scripts"] == {"iml": "iml.__main__:main"}
    from iml.__main__ import main

    assert callable(main)
    setuptools = pyproject["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "src"}
    assert setuptools["packages"] == ["iml"]
    assert sorted(setuptools["py-modules"]) == sorted(EXERCISE)


def test_installed_entry_point_matches_when_installed():
    try:
        distribution = importlib.metadata.distribution("interpretable-ml")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the project is not installed (pip install -e .)")
    scripts = {entry.name: entry.value for entry in distribution.entry_points if entry.group == "console_scripts"}
    assert scripts["iml"] == "iml.__main__:main"


def test_python_m_iml_help_lists_every_command():
    """From the repository root with the source on the path, as `pip install -e .` would put it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for argv in ([], ["--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "iml", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: python -m iml COMMAND")
        listed = re.findall(r"^  (\S+)  ", result.stdout, re.MULTILINE)
        assert listed == list(COMMANDS), result.stdout
        for name, (_, text) in COMMANDS.items():
            assert re.search(rf"^  {re.escape(name)} +{re.escape(text)}$", result.stdout, re.MULTILINE), name


def test_every_registered_command_has_its_module():
    for name, (module, _) in COMMANDS.items():
        path = ROOT / "src" / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"command {name} runs {module}, which has no file {path.relative_to(ROOT)}"


@pytest.mark.parametrize("bench", sorted(p.stem for p in (ROOT / "bench").glob("*.py")))
def test_every_benchmark_imports_what_the_project_still_has(bench, monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    importlib.import_module(bench)  # an import that moved elsewhere fails here, not at the next measurement
