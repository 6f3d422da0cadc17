"""Lesson 01 — handwritten digits with a fully connected network: its record and `check`.

    from autograder.lessons.mnist_dnn import check   # in the lesson's check cells
    check("model")

The checks are data (catalogue.py); probes.py runs in the jail (and in a student's kernel for
a self-check), judges.py in the grader's process.
"""
from autograder.engine.lesson import Lesson
from autograder.lessons.common import datacache, fixtures
from autograder.lessons.mnist_dnn.catalogue import CHECKS, CLEAN, GAPS, TIME_FACTOR, WHAT

LESSON = Lesson(
    id="01_mnist_dnn",
    title="Handwritten digits with a fully connected network",
    teaches="tensors and shapes, logits and cross-entropy, the mini-batch training loop, "
            "measuring accuracy honestly (after Fidle's PMNIST1, its defects fixed)",
    checks=CHECKS, gaps=GAPS, what=WHAT, clean=CLEAN, time_factor=TIME_FACTOR,
    probes="autograder.lessons.mnist_dnn.probes",
    data=datacache.files_for,
    budgets={"numbers": 1_000_000},  # parameters + buffers + constants; the solution has 89,610
    thresholds={"min_test_accuracy": fixtures.MIN_TEST_ACCURACY},
    secret=frozenset({"accuracy"}),  # its cases are built from a secret drawn per grading
    minutes=90,
)


def check(name: str, submission=None):
    """The ✓/✗ card of a group of this lesson's checks (see autograder/frontends/selfcheck.py)."""
    from autograder.frontends.selfcheck import check as card

    return card(name, submission=submission, lesson=LESSON.id)


__all__ = ["LESSON", "check"]
