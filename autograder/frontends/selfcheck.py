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

A live check grades only what is on the student's screen. When a name the checks need is
missing (a kernel restart, a cell not run yet), or the cell that defines it failed the last
time it ran (the kernel still holds an older definition), the card is one line that says which
cell to run, instead of a ✗ per check for code the student is not looking at.

Nothing is written to stderr (nbgrader zeroes a test cell that writes there) and a failed
check raises nothing. The points come back as `Points`, a float that Jupyter does not echo
under the card (nbgrader's test cells get their points from GradeTestCells, not from here).
"""
from __future__ import annotations

import ast
import hashlib
import html
import linecache
import os
import re
import sys
import textwrap
from pathlib import Path

from autograder.engine.checks import UsageError
from autograder.engine.lesson import resolve
from autograder.engine.grading import grade, grade_namespace, quiet
from autograder.engine.report import CARD_WIDTH, FAIL_COLOR, group_card, group_card_html

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


class Notice:
    """One line in place of a group's card, when nothing on screen could be checked: "not run
    yet" (neutral: a cell to run) or "not checked" (red: a cell to fix)."""

    COLORS = {"not run yet": "#57606a", "not checked": FAIL_COLOR}

    def __init__(self, name: str, state: str, text: str):
        self.name, self.state, self.text = name, state, text

    def __str__(self) -> str:
        return "\n".join(textwrap.wrap(f"{self.name}: {self.state} — {self.text}", CARD_WIDTH,
                                        subsequent_indent="    ", break_long_words=False,
                                        break_on_hyphens=False))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return (f'<div class="autograder-notice" style="font-family:var(--jp-code-font-family,'
                f'monospace);line-height:1.5"><span style="color:{self.COLORS[self.state]};'
                f'font-weight:bold">{html.escape(self.name)}: {self.state}</span> — '
                f"{html.escape(self.text)}</div>")


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
    if isinstance(results, Notice):
        show(results)
        return Points(0.0)
    if results:
        show(Card(name, results))
    return Points(sum(r.score for r in results))


def show(card: Card | Notice) -> None:
    """HTML in Jupyter (IPython's display picks the richest format), plain text elsewhere."""
    if _shell():
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
    """The results of `name`'s public checks on the kernel's objects, or a Notice when what
    they would check is not what the notebook shows."""
    checks = resolve(lesson).select(name, public_only=True)
    if not checks:
        print(f"{name}: hidden checks run only when your notebook is graded")
        return []
    namespace = vars(sys.modules["__main__"])
    needs = list(dict.fromkeys(n for c in checks for n in c.needs))
    missing = [n for n in needs if n not in namespace]
    if missing:  # a kernel restart, or cells skipped: say which cell to run, grade nothing
        return Notice(name, "not run yet", " ".join(run_first(n, lesson) for n in missing))
    failed = [why for why in map(failed_definition, needs) if why]
    if failed:  # the kernel holds an older definition than the one on screen
        return Notice(name, "not checked", " ".join(failed))
    results = grade_namespace(namespace, lesson, name).results
    helpers = {n for n in map(undefined_name, results) if n and n not in namespace
               and _defined_in_lesson(n, lesson)}
    if helpers:  # a function of the lesson that the student's code calls was not run
        return Notice(name, "not run yet", " ".join(run_first(n, lesson) for n in sorted(helpers)))
    return results


def undefined_name(result) -> str | None:
    """The name of a NameError that failed this check, if one did."""
    if result.passed:
        return None
    error = (result.details or {}).get("error") or {}
    if error.get("type") == "NameError" and error.get("name"):
        return error["name"]
    found = re.search(r"NameError: name '(\w+)' is not defined", result.message)
    return found.group(1) if found else None


def run_first(name: str, lesson: str) -> str:
    """ "MyModel is not defined in this kernel: run the cell that defines it (gap 1, section 5.
    Create the model) first ..." """
    found, gap = _defined_in_lesson(name, lesson), resolve(lesson).gaps.get(name)
    verb, section = found or ("defines", None)
    where = [f"gap {gap}"] if gap else []
    if found:
        where.append(f"section {section}" if section else "at the top")
    return (f"{name} is not defined in this kernel: run the cell that {verb} it "
            f"{'(' + ', '.join(where) + ')' if where else 'above'} first — after a kernel "
            f"restart, select this cell and use Run ▸ Run All Above Selected Cell.")


# ------------------------------------------------------------------ what is on the screen

def failed_definition(name: str) -> str | None:
    """Why the kernel's `name` is not the one on the student's screen: the cell that last
    tried to define it (with `class`/`def`) failed, so the kernel still holds an earlier one.
    None outside IPython, or when the kernel's object came from that cell.

    IPython keeps every cell it ran, failed ones included, in `In`; a class or function
    keeps the name of the cell its code was compiled from, whose text linecache holds."""
    shell = _shell()
    inputs = shell.user_ns.get("In") if shell else None
    if not isinstance(inputs, list):
        return None
    cell = next((c for c in reversed(inputs) if isinstance(c, str) and name in defines(c)), None)
    if cell is None:
        return None
    problem = syntax_problem(cell)
    if problem is None:
        defined_by = cell_of(shell.user_ns.get(name))
        if defined_by is None or defined_by.strip() == cell.strip() or \
                not any(isinstance(c, str) and c.strip() == defined_by.strip() for c in inputs):
            return None  # the object is that cell's, or did not come from a cell at all
        problem = "see the error under it"
    return (f"the cell defining {name} failed when you last ran it ({problem}): fix it and run "
            f"it again. This kernel still holds the {name} of an earlier run, which is not the "
            f"code on your screen, so it was not checked.")


def _shell():
    """The IPython shell running this code (a notebook's kernel), or None."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython else None


def defines(cell: str) -> set[str]:
    """The names a cell defines with `class` or `def` at its top level, even when it does not
    parse (a student's cell with a syntax error still says what it was meant to define)."""
    try:
        tree = ast.parse(cell)
    except (SyntaxError, ValueError):
        return set(re.findall(r"^(?:async\s+def|def|class)\s+(\w+)", cell, re.MULTILINE))
    return {node.name for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}


def syntax_problem(cell: str) -> str | None:
    """ "IndentationError: unexpected indent, line 4 of that cell", or None if it compiles."""
    try:
        compile(cell, "<cell>", "exec")
    except SyntaxError as error:
        return f"{type(error).__name__}: {error.msg}, line {error.lineno} of that cell"
    except ValueError as error:  # e.g. a null byte
        return f"{type(error).__name__}: {error}"
    return None


def cell_of(obj) -> str | None:
    """The source text a class or function was compiled from (a cell's, in a kernel)."""
    functions = [obj] if callable(obj) and hasattr(obj, "__code__") else \
        [v for v in vars(obj).values() if hasattr(v, "__code__")] if isinstance(obj, type) else []
    for function in functions:
        lines = linecache.getlines(function.__code__.co_filename)
        if lines:
            return "".join(lines)
    return None


def _defined_in_lesson(name: str, lesson: str) -> tuple[str, str | None] | None:
    """How the lesson makes `name` at top level — ("defines", section) for `class name` /
    `def name(`, ("imports", section) for an import of it — with the "N. Title" heading above
    it (None before the first heading); None when the lesson does not make it."""
    path = LESSONS_DIR / f"{lesson}.py"
    if not path.exists():
        return None
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"# ## (\d+\. .+)", line)
        if heading:
            section = heading.group(1).strip()
        elif re.match(rf"(class|def) {re.escape(name)}\b", line):
            return "defines", section
        elif re.match(rf"(from \S+ )?import .*\b{re.escape(name)}\b", line):
            return "imports", section
    return None
