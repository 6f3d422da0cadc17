"""Lesson 02 — handwritten digits with a convolutional network: its record and `check`.

    from autograder.lessons.mnist_cnn import check   # in the lesson's check cells
    check("size")

The checks are data (catalogue.py); probes.py runs in the jail (and in a student's kernel for
a self-check), graph.py in the clean child on the exported program, judges.py in the grader's
process. fit and accuracy are not gaps: the lesson imports lesson 01's from shared/training.py,
and the hidden check trains the student's MyCNN with that fit.
"""
from autograder.engine.lesson import Lesson
from autograder.lessons.common import datacache
from autograder.lessons.mnist_cnn.catalogue import CHECKS, CLEAN, GAPS, TIME_FACTOR, WHAT

LESSON = Lesson(
    id="02_mnist_cnn",
    title="Handwritten digits with a convolutional network",
    teaches="kernels, channels, padding and stride, pooling, receptive fields; a CNN against "
            "lesson 01's DNN on the same test set (after Fidle's MNIST CNN)",
    checks=CHECKS, gaps=GAPS, what=WHAT, clean=CLEAN, time_factor=TIME_FACTOR,
    probes="autograder.lessons.mnist_cnn.probes",
    secret=frozenset({"size"}),  # conv_output_size's cases are drawn anew for each grading
    # A layer size that is a float fails in MyCNN (gap 2), but its cause is gap 1's `/`.
    hints={r"\bfloat\b.*\bint|\bint.*\bfloat\b|'float' object cannot be interpreted":
           "a size that is a float usually comes from conv_output_size (gap 1): divide with // "
           "so that it returns an int"},
    data=datacache.files_for,
    # Parameters + buffers + constants. The solution holds 80,202; 250,000 leaves room for
    # twice its kernels or a wider hidden layer, and refuses a CNN that ends in a DNN-sized
    # dense layer (pytorch/examples' MNIST CNN: 1.2M, 1.18M of them in its 9,216 → 128 layer):
    # this lesson is about doing better than lesson 01 with fewer parameters.
    budgets={"numbers": 250_000},
    # One epoch of the lesson's fit on 60,000 images (benchmarks/bench_grader_cnn.py
    # --calibrate): the lesson's CNN and its honest variations reach 97.2-98.4 % on the noisy
    # test set, the lowest minus 1 % is 96.2 %; an affine one reaches 90.9 %, one that pools the
    # image away 63 %. Weaker designs (one small convolution: 95.3 %; global pooling: 91.1 %)
    # are under the lesson's bar after one epoch.
    thresholds={"min_test_accuracy": 0.96},
    minutes=90,
)


def check(name: str, submission=None):
    """The ✓/✗ card of a group of this lesson's checks (see autograder/frontends/selfcheck.py)."""
    from autograder.frontends.selfcheck import check as card

    return card(name, submission=submission, lesson=LESSON.id)


__all__ = ["LESSON", "check"]
