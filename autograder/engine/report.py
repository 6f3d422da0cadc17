"""Render reports: scorecard text, JSON, Gradescope results.json, CSV gradebook.

Two audiences. The instructor's outputs (the `grade` scorecard, --json, the CSV) show every
message and detail. The student's outputs (self-check lines, Gradescope, the per-student
feedback files of `batch`) show hidden checks with their verdict and generic text only.
"""
from __future__ import annotations

import csv
import html
import itertools
import json
import textwrap
from pathlib import Path

from autograder.engine.checks import format_points
from autograder.engine.lesson import resolve


def scorecard(report, student: bool = False) -> str:
    lines = [f"{report.lesson} — {Path(report.submission).name}"]
    lines += [f"  note: {note}" for note in report.notes]
    lines += [r.summary(student) for r in report.results]
    failed = sum(not r.passed for r in report.results)
    lines.append(f"score {format_points(report.score)}/{format_points(report.max_score)}"
                 + (f" — {failed} check(s) failed" if failed else " — all checks passed"))
    return "\n".join(lines)


CARD_WIDTH = 88  # a terminal, nbgrader's feedback page: lines never wrap inside a word
PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"


def group_card(name: str, results) -> list[str]:
    """What a student reads for a group of checks, as plain text: one line per check
    ("✗ batch_independence [0/2] title"), the hint of a failing check below it, wrapped
    between words, and the group's total ("model: 6/8 points"). Failing checks in a row with
    the same hint (an unfilled gap) share it. The same in a self-check cell, a terminal and
    nbgrader's test cells."""
    lines = []
    for result, hint in card_lines(results):
        lines.append(f"{_mark(result)} {_label(result)}")
        if hint:
            lines += textwrap.wrap(hint, CARD_WIDTH, initial_indent="    → ",
                                   subsequent_indent="      ", break_long_words=False,
                                   break_on_hyphens=False)
    return lines + [group_total(name, results)]


def group_card_html(name: str, results) -> str:
    """The same card for Jupyter: ✓ green, ✗ red, hints in their own indented line."""
    rows = []
    for result, hint in card_lines(results):
        color, kind = (PASS_COLOR, "pass") if result.passed else (FAIL_COLOR, "fail")
        rows.append(f'<div class="autograder-{kind}"><span style="color:{color};'
                    f'font-weight:bold">{_mark(result)}</span> {html.escape(_label(result))}'
                    f"</div>")
        if hint:
            rows.append(f'<div class="autograder-hint" style="margin-left:1.6em">'
                        f"→ {html.escape(hint)}</div>")
    rows.append(f'<div class="autograder-total" style="font-weight:bold">'
                f"{html.escape(group_total(name, results))}</div>")
    style = ("font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-"
             "size,13px);line-height:1.5;white-space:normal;word-break:normal;overflow-wrap:normal")
    return f'<div class="autograder-card" style="{style}">' + "".join(rows) + "</div>"


def card_lines(results) -> list[tuple]:
    """(result, the hint to show under it or ""): failing checks in a row with the same hint
    show it once, under the last of them."""
    shown = []
    for hint, run in itertools.groupby(results, key=_hint):
        *first, last = run
        shown += [(result, "") for result in first]
        shown.append((last, f"(all {len(first) + 1} above) {hint}" if hint and first else hint))
    return shown


def _hint(result) -> str:
    return "" if result.passed else result.public_message()


def group_total(name: str, results) -> str:
    earned = sum(r.score for r in results)
    possible = sum(r.max_score for r in results)
    return f"{name}: {format_points(earned)}/{format_points(possible)} points"


def _mark(result) -> str:
    return "✓" if result.passed else "✗"


def _label(result) -> str:
    """ "batch_independence [0/2] one image's output does not depend on the rest of the batch" """
    hidden = " (hidden)" if result.check.hidden else ""
    return (f"{result.check.id}{hidden} [{format_points(result.score)}/"
            f"{format_points(result.max_score)}] {result.check.title}")


def write_json(report, path) -> None:
    Path(path).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")


def gradescope(report) -> dict:
    """Gradescope's results.json: hidden checks are shown after grades are published."""
    tests = [{"name": f"{r.check.id}: {r.check.title}", "score": r.score,
              "max_score": r.max_score, "status": "passed" if r.passed else "failed",
              "output": r.public_message(),
              "visibility": "after_published" if r.check.hidden else "visible"}
             for r in report.results]
    return {"score": report.score, "output": "\n".join(report.notes), "tests": tests,
            "visibility": "visible", "stdout_visibility": "hidden"}


def write_gradescope(report, path) -> None:
    Path(path).write_text(json.dumps(gradescope(report), indent=2) + "\n")


# What a gradebook row's "status" says, and who acts on it. Only a graded row has points: the
# others leave score and checks blank, so that no spreadsheet, sum or LMS upload takes them for 0.
GRADED = "graded"
NOT_GRADED = "not graded"  # the grader or the machine failed: grade again, never the student's
REJECTED = "rejected"      # the file cannot be graded as it is (unreadable, another lesson, none)


def failure(error: BaseException) -> tuple[str, str]:
    """(status, message) of a submission whose grading raised `error`. A SubmissionError or a
    UsageError (another lesson's notebook) is the file's; anything else is the grader's, whose
    message starts with "not graded: " and says so."""
    from autograder.engine.checks import UsageError
    from autograder.engine.jail import NoJail
    from autograder.engine.sandbox import SandboxError
    from autograder.engine.submission import SubmissionError

    text = str(error)
    if isinstance(error, (SubmissionError, UsageError)):
        return REJECTED, f"could not grade: {text}"
    if text.startswith("not graded: "):  # GraderUnavailable says it already
        return NOT_GRADED, text
    if isinstance(error, NoJail):  # this machine's set-up: the message says what to do
        return NOT_GRADED, f"not graded: {text}"
    if isinstance(error, SandboxError):
        return NOT_GRADED, f"not graded: the grader failed ({text}); it is graded again next run"
    return NOT_GRADED, (f"not graded: the grader failed ({type(error).__name__}: {text}); "
                        f"please report it")


def gradebook_columns(lesson) -> list[str]:
    return (["student", "status", "score", "max_score"] + [c.id for c in resolve(lesson).checks]
            + ["error"])


def gradebook_row(student: str, report=None, error: str = "", status: str = "") -> dict:
    """One CSV row: points per check, or a status and an error and no points at all."""
    row = {"student": student, "status": status or (GRADED if report is not None
                                                    else NOT_GRADED), "error": error}
    if report is not None:
        row.update(score=report.score, max_score=report.max_score)
        row.update({r.check.id: r.score for r in report.results})
    return row


def write_gradebook(rows: list[dict], path, lesson) -> None:
    """Every number in one format (2, 0, 25, 0.5); a graded row's missing check is 0 points, a
    row that was not graded has none (blank cells)."""
    columns = gradebook_columns(lesson)
    points = set(columns) - {"student", "status", "error"}
    max_score = resolve(lesson).max_score
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["student"]):
            writer.writerow(_cells({"max_score": max_score, **row}, columns, points))


def _cells(row: dict, columns: list[str], points: set[str]) -> dict:
    graded = row.get("status", GRADED) == GRADED
    cells = {}
    for column in columns:
        if column not in points:
            cells[column] = spreadsheet_safe(row.get(column, ""))
        elif graded or column == "max_score":
            cells[column] = format_points(row.get(column, 0))
        else:
            cells[column] = ""  # not graded: no points, which is not 0 points
    return cells


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text) -> str:
    """Text for a CSV cell that a spreadsheet shows as text: student names come from file
    names, so `=HYPERLINK(...)` gets a leading apostrophe (OWASP's advice)."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
