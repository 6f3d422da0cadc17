"""The pytest front end: `pytest autograder --submission PATH [--lesson ID]`.

One test per check of the submission's lesson (the lesson it declares, or --lesson, which must
agree), each reporting the message a student would read. The submission is graded once, in
the jail, like `python -m autograder grade`. The repository's own `pytest` collects only
tests/ (testpaths), so this suite runs only when asked for; without --submission it is skipped
with a hint. autograder/conftest.py loads this plugin; autograder/test_submission.py is the
suite.
"""
import pytest


def pytest_addoption(parser):
    group = parser.getgroup("autograder")
    group.addoption("--submission", help="the .py or .ipynb file to grade")
    group.addoption("--lesson", default=None, help="the lesson to grade it as (default: the one "
                                                   "the notebook declares)")
    group.addoption("--time-limit", type=float, default=None, help="seconds per probe")
    group.addoption("--memory-limit", type=int, default=None, help="MB for the student's code")


def _lesson(config):
    """The Lesson of --submission (None without one): detected once, before collection."""
    from autograder import lessons
    from autograder.engine import submission

    path = config.getoption("--submission", default=None)
    if not path:
        return None
    if not hasattr(config, "_autograder_lesson"):
        sub = submission.load(path)
        config._autograder_lesson = lessons.detect(sub, config.getoption("--lesson"))
    return config._autograder_lesson


def pytest_generate_tests(metafunc):
    if "check" in metafunc.fixturenames:
        lesson = _lesson(metafunc.config)
        checks = lesson.checks if lesson else [None]
        metafunc.parametrize("check", checks,
                             ids=lambda c: c.id if c else "no-submission")


@pytest.fixture(scope="session")
def graded(request):
    """The submission's results by check id, graded once."""
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import Limits

    lesson = _lesson(request.config)
    if lesson is None:
        pytest.skip("pass --submission PATH to grade a submission")
    limits = Limits()
    for option, field in (("--time-limit", "time_s"), ("--memory-limit", "memory_mb")):
        value = request.config.getoption(option, default=None)
        if value is not None:
            setattr(limits, field, value)
    path = request.config.getoption("--submission")
    return {r.check.id: r for r in grade(path, lesson, limits=limits).results}
