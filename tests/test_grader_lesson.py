"""The grader on the course's own files, for every lesson: the reference solution gets full
marks, and the generated student lesson fails each gap's checks with the "not filled yet"
message."""
from pathlib import Path

import pytest

from autograder import lessons
from autograder.engine.grading import grade

REPO = Path(__file__).resolve().parent.parent
LESSONS = lessons.ids()


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_gets_full_marks(lesson):
    report = grade(REPO / "solutions" / f"{lesson}.py")
    assert report.lesson == lesson
    assert report.score == report.max_score == lessons.get(lesson).max_score, \
        "\n".join(r.summary() for r in report.results)


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_notebook_passes_the_public_checks(lesson):
    report = grade(REPO / "solutions" / f"{lesson}.ipynb", public_only=True)
    assert report.passed, "\n".join(r.summary() for r in report.results)


@pytest.mark.parametrize("suffix", [".ipynb", ".py"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_generated_lesson_fails_each_gap_as_not_filled(lesson, suffix):
    record = lessons.get(lesson)
    report = grade(REPO / "lessons" / f"{lesson}{suffix}")
    assert report.score == 0
    for result in report.results:
        gap = record.gaps[result.check.needs[0]]  # the first gap the check needs
        assert f"gap {gap} is not filled yet" in result.message, result.summary()
    assert len(report.results) == len(record.checks)
