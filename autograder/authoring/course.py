"""Build the student lessons from the solutions: one source of truth.

    solutions/<lesson>.py            the only hand-edited file (Jupytext py:percent)
      -> annotated_notebook()        nbgrader metadata derived from the code, outputs cleared:
                                     a `### BEGIN SOLUTION` region -> solution cell "gap<N>"
                                     a `check("<group>")` cell     -> grade cell "check_<group>"
                                     the `parameters` cell         -> left editable
                                     every other cell              -> locked, read-only
      -> student_notebook()          nbgrader's own LockCells, ClearSolutions, ClearHiddenTests,
                                     ClearOutput; "generated from" goes in the notebook's
                                     metadata and the .py's header, never in a cell: the
                                     notebook opens with the lesson's own words
      -> lessons/<lesson>.ipynb + lessons/<lesson>.py
    and solutions/<lesson>.ipynb, the Jupytext pair of the solution .py.

    python -m autograder.authoring.course lessons [--check]

A malformed source (an unmatched marker, a gap without its `# TODO (gap N)` hint, a check
cell with other code in it) is a `MarkerError` that names the cell.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, LockCells

from autograder import lessons as registry

REPO = Path(__file__).resolve().parents[2]
LESSONS = registry.ids()  # every lesson of the registry has its solution in solutions/
PAIR = "ipynb,py:percent"

# The substrings nbgrader itself looks for (ClearSolutions, ClearHiddenTests), begin before end.
REGIONS = (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
TODO = re.compile(r"TODO \(gap (\d+)\)")
CHECK_CALL = re.compile(r"""(?<![\w.])check\(\s*["']([\w-]+)["']\s*\)""")
PARAMETERS = "parameters"  # papermill's tag for the cell of run parameters

# What replaces a gap (ClearSolutions.code_stub): the nbgrader course's config uses it too, so
# that `nbgrader generate_assignment` releases the lesson's very cells.
CODE_STUB = {"python": "# YOUR CODE HERE\n"
                       'raise NotImplementedError("gap not filled yet: see the TODO above")'}

# Run in this order, as `nbgrader generate_assignment` does (minus checksums and the gradebook),
# each with its settings.
STUDENT_PIPELINE = ((LockCells, {}), (ClearSolutions, {"code_stub": CODE_STUB}),
                    (ClearHiddenTests, {}), (ClearOutput, {}))

# The lesson .py stays readable: a header that only says where it comes from, no nbgrader
# metadata (its .ipynb keeps both).
GENERATED = "generated"  # the notebook metadata key of the maintainers' note
LESSON_JUPYTEXT = {"formats": PAIR, "notebook_metadata_filter": f"{GENERATED},{registry.METADATA_KEY},-all",
                   "cell_metadata_filter": "tags,-all"}


class MarkerError(ValueError):
    """The solution's markers are malformed; the message names the cell."""


def where(index: int, cell) -> str:
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index} ({first[:60]!r})"


# --------------------------------------------------------------------------- reading the source

def solution_path(lesson: str, suffix: str = ".py") -> Path:
    return REPO / "solutions" / f"{lesson}{suffix}"


def lesson_path(lesson: str, suffix: str) -> Path:
    return REPO / "lessons" / f"{lesson}{suffix}"


def read_solution(lesson: str) -> nbformat.NotebookNode:
    """The solution .py as a notebook, cells given stable ids (cell-00, cell-01, ...)."""
    nb = jupytext.read(solution_path(lesson))
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:02d}"
    return nb


def regions(index: int, cell) -> dict[str, int]:
    """How many well-formed regions of each kind the cell holds; MarkerError for a bad one."""
    counts = {begin: 0 for begin, _ in REGIONS}
    opened = None  # (begin marker, line number)
    for number, line in enumerate(cell.source.splitlines(), 1):
        for begin, end in REGIONS:
            if begin in line:
                if opened:
                    raise MarkerError(f"{where(index, cell)}: line {number} opens '{begin}' inside "
                                      f"the '{opened[0]}' opened at line {opened[1]}")
                opened = (begin, number)
            elif end in line:
                if not opened or opened[0] != begin:
                    raise MarkerError(f"{where(index, cell)}: line {number} has '{end}' "
                                      f"without a matching '{begin}' before it")
                counts[begin] += 1
                opened = None
    if opened:
        raise MarkerError(f"{where(index, cell)}: '{opened[0]}' at line {opened[1]} is never "
                          f"closed by '{dict(REGIONS)[opened[0]]}'")
    if any(counts.values()) and cell.cell_type != "code":
        raise MarkerError(f"{where(index, cell)}: markers belong in code cells only")
    return counts


def gap_number(index: int, cell) -> int:
    """N of the `# TODO (gap N)` hint standing just above each solution region of the cell."""
    lines = cell.source.splitlines()
    numbers = set()
    for number, line in enumerate(lines):
        if REGIONS[0][0] not in line:
            continue
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#") and not TODO.search(lines[above]):
            above -= 1  # the hint may run over several comment lines
        hint = TODO.search(lines[above]) if above >= 0 else None
        if not hint or not lines[above].strip().startswith("#"):
            raise MarkerError(f"{where(index, cell)}: the solution region at line {number + 1} "
                              f"has no '# TODO (gap N): ...' hint just above it")
        numbers.add(int(hint.group(1)))
    if len(numbers) != 1:
        raise MarkerError(f"{where(index, cell)}: one cell, one gap; found gaps {sorted(numbers)}")
    return numbers.pop()


def check_import(lesson: str) -> str:
    """The line that gives a lesson's check cells its `check` (and names the lesson)."""
    return f"from {registry.REGISTRY[lesson]} import check"


def check_group(index: int, cell, lesson: str) -> str | None:
    """The group of a check cell (`check("model")`), None for any other cell."""
    if cell.cell_type != "code" or not CHECK_CALL.search(cell.source):
        return None
    code = [line.strip() for line in cell.source.splitlines()
            if line.strip() and not line.strip().startswith("#")]
    if code[:1] != [check_import(lesson)] or len(code) != 2 or not CHECK_CALL.fullmatch(code[1]):
        raise MarkerError(f"{where(index, cell)}: a check cell holds `{check_import(lesson)}` "
                          f"and one `check(\"<group>\")` call, nothing else")
    group = CHECK_CALL.fullmatch(code[1]).group(1)
    registry.get(lesson).select(group)  # an unknown group is a UsageError naming the groups
    return group


# --------------------------------------------------------------------------- nbgrader metadata

def nbgrader_metadata(kind: str, grade_id: str, points: float | None = None) -> dict:
    meta = {"grade": kind == "grade", "grade_id": grade_id, "locked": kind != "solution",
            "schema_version": 3, "solution": kind == "solution", "task": False}
    if kind == "grade":
        meta["points"] = points
    return meta


def annotate(nb, lesson: str) -> None:
    """Give every cell its nbgrader metadata (in place)."""
    seen = {}
    for index, cell in enumerate(nb.cells):
        if PARAMETERS in cell.metadata.get("tags", ()):
            continue  # students try other epochs or batch sizes; autograde sets its own values
        counts = regions(index, cell)
        group = check_group(index, cell, lesson)
        if counts["BEGIN HIDDEN TESTS"] and group is None:
            raise MarkerError(f"{where(index, cell)}: hidden tests belong in a check cell")
        if counts["BEGIN SOLUTION"]:
            if group:
                raise MarkerError(f"{where(index, cell)}: a check cell cannot hold a solution")
            meta = nbgrader_metadata("solution", f"gap{gap_number(index, cell)}")
        elif group:
            meta = nbgrader_metadata("grade", f"check_{group}", registry.get(lesson).group_points(group))
        else:
            meta = nbgrader_metadata("locked", cell.id)
        if meta["grade_id"] in seen:
            raise MarkerError(f"{where(index, cell)}: {meta['grade_id']} again (first in cell "
                              f"{seen[meta['grade_id']]}); one cell per gap and per check group")
        seen[meta["grade_id"]] = index
        cell.metadata["nbgrader"] = meta


def annotated_notebook(lesson: str) -> nbformat.NotebookNode:
    """The solution with nbgrader metadata, outputs cleared: the nbgrader course's source.
    Its metadata names its lesson (autograder.lessons.detect reads it when it is graded)."""
    nb = read_solution(lesson)
    annotate(nb, lesson)
    nb.metadata[registry.METADATA_KEY] = {"lesson": lesson}
    nb, _ = ClearOutput().preprocess(nb, {})
    nb.metadata.pop("jupytext", None)  # no pairing: a .py beside it would be released, answers in
    return nb


# --------------------------------------------------------------------------- the student lesson

def generated_note(lesson: str) -> dict:
    """For maintainers, out of the students' sight: the notebook's metadata, the .py's header."""
    return {"from": f"solutions/{lesson}.py", "by": "make lessons",
            "note": "do not edit: change the solution and regenerate"}


def student_notebook(annotated, lesson: str) -> nbformat.NotebookNode:
    """The lesson: the annotated solution through nbgrader's preprocessors; the maintainers'
    note in its metadata (a student's copy drops it with the Jupytext pairing)."""
    nb = copy.deepcopy(annotated)
    resources = {}
    for step, settings in STUDENT_PIPELINE:
        nb, resources = step(**settings).preprocess(nb, resources)
    nb.metadata[GENERATED] = generated_note(lesson)
    nb.metadata["jupytext"] = dict(LESSON_JUPYTEXT)
    return nb


def student_copy(lesson_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A student's own copy of a lesson: no Jupytext pairing (a save writes no .py and never
    rewrites a tracked file) and no maintainers' note."""
    nb = copy.deepcopy(lesson_nb)
    nb.metadata.pop("jupytext", None)
    nb.metadata.pop(GENERATED, None)
    return nb


def paired_solution(lesson: str) -> nbformat.NotebookNode:
    """solutions/<lesson>.ipynb: the .py as jupytext pairs it, without nbgrader metadata."""
    nb = read_solution(lesson)
    nb.metadata["jupytext"] = {"formats": PAIR}
    return nb


def rendered(lesson: str) -> dict[Path, str]:
    """The text of every generated file of a lesson, by path."""
    lesson_nb = student_notebook(annotated_notebook(lesson), lesson)
    texts = {solution_path(lesson, ".ipynb"): jupytext.writes(paired_solution(lesson), "ipynb"),
             lesson_path(lesson, ".ipynb"): jupytext.writes(lesson_nb, "ipynb"),
             lesson_path(lesson, ".py"): jupytext.writes(lesson_nb, "py:percent")}
    return {path: text.rstrip("\n") + "\n" for path, text in texts.items()}  # as Jupyter saves


def cells_of(path: Path) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in jupytext.read(path).cells]


def refuse_to_lose_edits(lesson: str) -> None:
    """Stop if solutions/<lesson>.ipynb was edited after its .py (without jupytext's pairing)."""
    py, ipynb = solution_path(lesson), solution_path(lesson, ".ipynb")
    if (ipynb.exists() and ipynb.stat().st_mtime > py.stat().st_mtime
            and cells_of(ipynb) != cells_of(py)):
        raise SystemExit(f"{ipynb.relative_to(REPO)} is newer than {py.relative_to(REPO)} and their "
                         f"cells differ: it may hold edits made without jupytext. The .py is the "
                         f"source. To keep the notebook's edits: `jupytext --sync "
                         f"{ipynb.relative_to(REPO)}`; to drop them: `touch {py.relative_to(REPO)}`. "
                         f"Then rerun.")


def build_lessons(lessons=LESSONS, check: bool = False) -> list[Path]:
    """Regenerate the lessons (and the solutions' .ipynb); return the files that were (with
    check=True: would be) changed."""
    changed = []
    for lesson in lessons:
        if not check:
            refuse_to_lose_edits(lesson)
        for path, text in rendered(lesson).items():
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.authoring.course",
                                     description="Generate the student lessons from solutions/.")
    commands = parser.add_subparsers(dest="command", required=True)
    lessons = commands.add_parser("lessons", help="write lessons/ and the solutions' .ipynb")
    lessons.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if regeneration would change a file")
    lessons.add_argument("--lesson", action="append", choices=LESSONS,
                         help="only this lesson (repeatable; default: all)")
    args = parser.parse_args(argv)
    try:
        changed = build_lessons(args.lesson or LESSONS, check=args.check)
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    if args.check and changed:
        print("generated files differ from solutions/: run `make lessons`", file=sys.stderr)
        return 1
    if not changed:
        print("lessons are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
