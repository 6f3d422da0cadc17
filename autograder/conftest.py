"""pytest options for the lesson suites: `pytest autograder --submission PATH`.

The repository's own `pytest` collects only tests/ (testpaths), so these suites run only
when asked for; without --submission each test is skipped with a hint.
"""
import pytest


def pytest_addoption(parser):
    group = parser.getgroup("autograder")
    group.addoption("--submission", help="the .py or .ipynb file to grade")
    group.addoption("--time-limit", type=float, default=None, help="seconds per probe")
    group.addoption("--memory-limit", type=int, default=None, help="MB for the student's code")


@pytest.fixture(scope="module")
def graded(request):
    """The submission's results by check id, graded once per lesson suite (its LESSON)."""
    from autograder.grading import grade
    from autograder.sandbox import Limits

    path = request.config.getoption("--submission", default=None)
    if not path:
        pytest.skip("pass --submission PATH to grade a submission")
    limits = Limits()
    for option, field in (("--time-limit", "time_s"), ("--memory-limit", "memory_mb")):
        value = request.config.getoption(option, default=None)
        if value is not None:
            setattr(limits, field, value)
    lesson = request.module.LESSON
    return {r.check.id: r for r in grade(path, lesson, limits=limits).results}
