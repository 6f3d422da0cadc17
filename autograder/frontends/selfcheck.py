"""`check("model")` in a lesson notebook: a ✓/✗ card for a group of checks, its points back.

    from autograder.lessons.mnist_dnn import check    # each lesson's package has its own
    check("model")          # a group: "model", "fit", "accuracy", "hidden" — or one check id

shows one line per check ("✓ output_shape [2/2] logits of shape (B, 10) ..."), the hint of
each failing check under it, then "model: 5/8 points". In Jupyter the card is HTML (✓ green,
✗ red); in a terminal, plain text on stdout.

Two modes:
- live (a student in Jupyter): the public checks probe the objects MyModel / fit / accuracy
  of the running notebook, right here, in a few seconds;
- file (`submission=PATH`, or the environment variable AUTOGRADER_SUBMISSION, which the nbgrader
  course sets): the file is graded in the sandbox exactly like `python -m autograder grade`,
  hidden checks included, once per file content; later calls reuse that grading.

Nothing is written to stderr (nbgrader zeroes a test cell that writes there) and a failed
check raises nothing. The points come back as `Points`, a float that Jupyter does not echo
under the card (nbgrader's test cells get their points from GradeTestCells, not from here).
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from autograder.engine.checks import CheckResult, UsageError
from autograder.engine.lesson import resolve
from autograder.engine.grading import grade, grade_namespace, quiet
from autograder.engine.report import group_card, group_card_html

ENV_VAR = "AUTOGRADER_SUBMISSION"
LESSONS_DIR = Path(__file__).resolve().parents[2] / "lessons"
_graded: dict[tuple[str, str], object] = {}  # (sha256, lesson) -> Report


class Points(float):
    """The points a check cell earned: a float, shown by Jupyter as nothing (the card says it)."""

    def _ipython_display_(self):
        pass


class Card:
    """A group's results, rendered as HTML by Jupyter and as plain text anywhere else."""

    def __init__(self, name: str, results):
        self.name, self.results = name, results

    def __str__(self) -> str:
        return "\n".join(group_card(self.name, self.results))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return group_card_html(self.name, self.results)


def check(name: str, submission=None, lesson: str | None = None) -> Points:
    """The card of `name` (a group or a check id) of `lesson`; a lesson's own `check`
    (`from autograder.lessons.mnist_dnn import check`) passes its id."""
    if lesson is None:
        raise UsageError("which lesson? import the lesson's own check, e.g. "
                         "`from autograder.lessons.mnist_dnn import check`")
    submission = submission or os.environ.get(ENV_VAR)
    if submission:
        results = _from_file(submission, lesson, name)
    else:
        results = _live(name, lesson)
    if results:
        show(Card(name, results))
    return Points(sum(r.score for r in results))


def show(card: Card) -> None:
    """HTML in Jupyter (IPython's display picks the richest format), plain text elsewhere."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell:
        from IPython.display import display
        display(card)
    else:
        print(card)


def _from_file(path, lesson: str, name: str):
    with open(path, "rb") as f:
        key = (hashlib.sha256(f.read()).hexdigest(), lesson)
    if key not in _graded:
        with quiet():
            _graded[key] = grade(path, lesson)
    wanted = {c.id for c in resolve(lesson).select(name)}
    return [r for r in _graded[key].results if r.check.id in wanted]


def _live(name: str, lesson: str):
    checks = resolve(lesson).select(name, public_only=True)
    if not checks:
        print(f"{name}: hidden checks run only when your notebook is graded")
        return []
    namespace = vars(sys.modules["__main__"])
    missing = [n for n in dict.fromkeys(n for c in checks for n in c.needs) if n not in namespace]
    if missing:  # a kernel restart, or cells skipped: say which cell to run, grade nothing
        hint = " ".join(run_first(n, lesson) for n in missing)
        return [CheckResult(c, False, hint) for c in checks]
    return grade_namespace(namespace, lesson, name).results


def run_first(name: str, lesson: str) -> str:
    """ "MyModel is not defined in this kernel: run the cell that defines it (gap 1, section 5.
    Create the model) first ..." """
    gap, section = resolve(lesson).gaps.get(name), _section_defining(name, lesson)
    where = ([f"gap {gap}"] if gap else []) + ([f"section {section}"] if section else [])
    return (f"{name} is not defined in this kernel: run the cell that defines it "
            f"({', '.join(where) or 'above'}) first — after a kernel restart, select this cell "
            f"and use Run ▸ Run All Above Selected Cell.")


def _section_defining(name: str, lesson: str) -> str | None:
    """The "## N. Title" heading above `class name` / `def name(` in the lesson, if found."""
    path = LESSONS_DIR / f"{lesson}.py"
    if not path.exists():
        return None
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"# ## (\d+\. .+)", line)
        if heading:
            section = heading.group(1).strip()
        elif re.match(rf"(class|def) {re.escape(name)}\b", line):
            return section
    return None
