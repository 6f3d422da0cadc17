"""Render reports: scorecard text, JSON, Gradescope results.json, CSV gradebook.

Two audiences. The instructor's outputs (the `grade` scorecard, --json, the CSV) show every
message and detail. The student's outputs (self-check lines, Gradescope, the per-student
feedback files of `batch`) show hidden checks with their verdict and generic text only.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder.checks import catalogue, format_points


def scorecard(report, student: bool = False) -> str:
    lines = [f"{report.lesson} — {Path(report.submission).name}"]
    lines += [f"  note: {note}" for note in report.notes]
    lines += [r.summary(student) for r in report.results]
    failed = sum(not r.passed for r in report.results)
    lines.append(f"score {format_points(report.score)}/{format_points(report.max_score)}"
                 + (f" — {failed} check(s) failed" if failed else " — all checks passed"))
    return "\n".join(lines)


def group_card(name: str, results) -> list[str]:
    """What a student reads for a group of checks: each check's line, then the group's total
    ("model: 5/8 points"). The same in a self-check cell and in nbgrader's test cells."""
    earned = sum(r.score for r in results)
    possible = sum(r.max_score for r in results)
    return ([r.summary(student=True) for r in results]
            + [f"{name}: {format_points(earned)}/{format_points(possible)} points"])


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


def gradebook_columns(lesson: str) -> list[str]:
    return ["student", "score", "max_score"] + [c.id for c in catalogue(lesson)] + ["error"]


def gradebook_row(student: str, report=None, error: str = "") -> dict:
    """One CSV row: points per check; a submission that could not be graded scores 0."""
    row = {"student": student, "error": error}
    if report is not None:
        row.update(score=report.score, max_score=report.max_score)
        row.update({r.check.id: r.score for r in report.results})
    return row


def write_gradebook(rows: list[dict], path, lesson: str) -> None:
    """Every number in one format (2, 0, 25, 0.5); a missing score or check is 0 points."""
    columns = gradebook_columns(lesson)
    points = set(columns) - {"student", "error"}
    max_score = sum(c.points for c in catalogue(lesson))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["student"]):
            row = {"max_score": max_score, **row}
            writer.writerow({column: format_points(row.get(column, 0)) if column in points
                             else row.get(column, "") for column in columns})
