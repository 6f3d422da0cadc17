"""The grader on the course's own files: the reference solution gets full marks, and the
generated student lesson fails each gap's checks with the "not filled yet" message."""
from pathlib import Path

import pytest

from autograder.engine.grading import grade
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "01_mnist_dnn"
LESSON = REPO / "lessons" / "01_mnist_dnn"
GAP = {"model": 1, "hidden": 1, "fit": 2, "accuracy": 3}


def existing(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} does not exist yet")
    return path


def test_solution_gets_full_marks():
    report = grade(existing(SOLUTION.with_suffix(".py")))
    assert report.score == report.max_score == 25, "\n".join(r.summary() for r in report.results)


def test_solution_notebook_passes_the_public_checks():
    report = grade(existing(SOLUTION.with_suffix(".ipynb")), public_only=True)
    assert report.passed, "\n".join(r.summary() for r in report.results)


@pytest.mark.parametrize("suffix", [".ipynb", ".py"])
def test_generated_lesson_fails_each_gap_as_not_filled(suffix):
    report = grade(existing(LESSON.with_suffix(suffix)))
    assert report.score == 0
    for result in report.results:
        gap = GAP[result.check.group]
        assert f"gap {gap} is not filled yet" in result.message, result.summary()
    assert len(report.results) == len(L01.checks)
