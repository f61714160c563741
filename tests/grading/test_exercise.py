"""The graded parts of the exercise, one test per part: the same checks as `python -m iml grade`.

Each runs in a fresh process against this folder's src/ (iml.grade.run_group), so a part still to
write fails its own test only. In the student handout this file is tests/test_exercise.py.
"""

from pathlib import Path

import pytest

from iml.grade import GROUPS, run_group

ROOT = next(folder for folder in Path(__file__).resolve().parents if (folder / "src" / "mnist_integrated.py").is_file())


@pytest.mark.parametrize("group", GROUPS, ids=[group.check for group in GROUPS])
def test_part(group):
    passed, message = run_group(group, ROOT)
    assert passed, f"{group.name} ({group.points} points): {message}"
