"""A submission as a pytest suite: one test per check of its lesson.

    pytest autograder --submission path/to/02_mnist_cnn.ipynb

The lesson is the one the notebook declares (or --lesson); see frontends/pytest_plugin.py.
"""


def test_check(check, graded):
    result = graded[check.id]
    assert result.passed, f"{check.id} ({check.points:g} points): {result.message}"
