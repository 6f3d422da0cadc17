"""Lesson 01 as a pytest suite: one test per check of the catalogue.

    pytest autograder --submission path/to/01_mnist_dnn.ipynb

The submission is graded once (sandboxed, see the `graded` fixture); each test reports one
check with the message a student would read.
"""
import pytest

from autograder.checks import catalogue

LESSON = "01_mnist_dnn"


@pytest.mark.parametrize("check", catalogue(LESSON), ids=lambda c: c.id)
def test_check(check, graded):
    result = graded[check.id]
    assert result.passed, f"{check.id} ({check.points:g} points): {result.message}"
