"""The registry of lessons: one entry per lesson, its id -> the package that builds its record.

    get("01_mnist_dnn")  -> the Lesson record (autograder/engine/lesson.py)
    detect(submission)   -> the lesson a notebook or .py says it belongs to

An unknown lesson is an error, never lesson 01: a notebook names its lesson in its metadata
(`"autograder": {"lesson": "02_mnist_cnn"}`, written by the authoring step) and in its check
cells (`from autograder.lessons.mnist_cnn import check`), and `detect` reads both.
Adding a lesson: a package here (see docs/writing-a-lesson.md) and one line below.
"""
from __future__ import annotations

import importlib

REGISTRY = {
    "01_mnist_dnn": "autograder.lessons.mnist_dnn",
    "02_mnist_cnn": "autograder.lessons.mnist_cnn",
}
METADATA_KEY = "autograder"  # notebook metadata: {"autograder": {"lesson": "<id>"}}


def ids() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(lesson_id: str):
    from autograder.engine.checks import UsageError

    if lesson_id not in REGISTRY:
        raise UsageError(f"unknown lesson {lesson_id!r}; known lessons: {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[lesson_id]).LESSON


def by_package(package: str) -> str | None:
    """The id of the lesson whose package is autograder.lessons.<package>, if any."""
    for lesson_id, module in REGISTRY.items():
        if module.rsplit(".", 1)[1] == package:
            return lesson_id
    return None


def detect(sub, wanted: str | None = None):
    """The Lesson of a loaded submission (engine.submission.Submission).

    What the file declares (notebook metadata, check-cell imports) must name one known lesson;
    `wanted` (an instructor's --lesson, an nbgrader assignment) must agree with it. A file that
    declares nothing is graded as `wanted`; with neither, the grader cannot tell: an error.
    """
    from autograder.engine.checks import UsageError

    declared = set(sub.lesson_metadata)
    declared |= {by_package(p) or f"autograder.lessons.{p}" for p in sub.lesson_imports}
    unknown = sorted(d for d in declared if d not in REGISTRY)
    if unknown:
        raise UsageError(f"{sub.path.name} names an unknown lesson ({', '.join(unknown)}); "
                         f"known lessons: {', '.join(REGISTRY)}")
    if wanted is not None:
        lesson = get(wanted)
        others = declared - {wanted}  # (nbgrader puts back wanted's deleted check cells)
        if others:
            raise UsageError(f"{sub.path.name} is a notebook of lesson "
                             f"{' and '.join(sorted(others))}, not of lesson {wanted}: was "
                             f"the right notebook handed in?")
        return lesson
    if len(declared) == 1:
        return get(declared.pop())
    if declared:
        raise UsageError(f"{sub.path.name} mixes lessons {', '.join(sorted(declared))}: its "
                         f"check cells must all import the same lesson's check")
    raise UsageError(f"cannot tell which lesson {sub.path.name} belongs to: it has no "
                     f"'{METADATA_KEY}' notebook metadata and no check cell "
                     f"(`from autograder.lessons.<lesson> import check`); pass --lesson "
                     f"({', '.join(REGISTRY)})")
