"""The class at a glance: one self-contained HTML file for the instructor.

Score histogram, failure rate per check, the most common diagnoses (failure messages with
their numbers blanked, so that "accuracy 0.41" and "accuracy 0.37" count as one) with counts
and example students, and grading time per submission. Figures are matplotlib PNGs embedded
as base64: the file opens offline and can be mailed. Everything a student controls (names,
messages) is escaped.

An entry is one student: {"student", "score", "max_score", "error", "seconds",
"checks": [{"id", "title", "passed", "message"}, ...]} — `entry` builds it from a batch result,
`autograder.frontends.nbgrader.course` from an autograded notebook.
"""
from __future__ import annotations

import base64
import collections
import datetime
import html
import io
import re
import statistics
from pathlib import Path

from matplotlib.figure import Figure

NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?")
TOP_DIAGNOSES = 15
EXAMPLES = 3


def entry(result: dict) -> dict:
    """A batch result (autograder.frontends.batch.grade_payload) as a report entry."""
    row, graded = result["row"], result.get("report") or {}
    return {"student": result["student"], "score": float(row.get("score") or 0),
            "max_score": float(graded.get("max_score") or row.get("max_score") or 0),
            "error": row.get("error", ""), "seconds": float(result.get("seconds") or 0),
            "checks": graded.get("checks", [])}


def normalise(message: str) -> str:
    """A diagnosis without its numbers or extra spaces, cut to a readable length."""
    text = " ".join(NUMBER.sub("#", message).split())
    return text if len(text) <= 240 else text[:239] + "…"


def diagnoses(entries: list[dict]) -> list[tuple[str, list[str], list[str]]]:
    """(normalised message, the checks that gave it, the students who got it), most students
    first; a submission that could not be graded counts under the check "(not graded)"."""
    checks, students = collections.defaultdict(list), collections.defaultdict(list)
    for e in entries:
        failures = [("(not graded)", e["error"])] if e["error"] else []
        failures += [(c["id"], c.get("message", "")) for c in e["checks"] if not c["passed"]]
        for check, message in failures:
            message = normalise(message)
            if check not in checks[message]:
                checks[message].append(check)
            if e["student"] not in students[message]:
                students[message].append(e["student"])
    ranked = sorted(students, key=lambda message: (-len(students[message]), message))
    return [(message, checks[message], students[message]) for message in ranked]


def failure_rates(entries: list[dict]) -> list[tuple[str, str, int, int]]:
    """(check id, title, failed, graded) in catalogue order (the first entry's order)."""
    order, titles = {}, {}
    failed, graded = collections.Counter(), collections.Counter()
    for e in entries:
        for check in e["checks"]:
            order.setdefault(check["id"], len(order))
            titles.setdefault(check["id"], check.get("title", ""))
            graded[check["id"]] += 1
            failed[check["id"]] += not check["passed"]
    return [(c, titles[c], failed[c], graded[c]) for c in sorted(order, key=order.get)]


def write(entries: list[dict], path, title: str = "class report") -> Path:
    path = Path(path)
    path.write_text(render(entries, title))
    return path


def render(entries: list[dict], title: str) -> str:
    sections = [_summary(entries), _scores(entries), _checks(entries), _diagnoses(entries),
                _times(entries)]
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"meta\">generated {generated}</p>"
            + "".join(sections) + "</body></html>\n")


STYLE = """
body { font-family: sans-serif; max-width: 62rem; margin: 1rem auto; padding: 0 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.n { text-align: right; } .meta { color: #666; } img { max-width: 100%; }
"""


def _summary(entries: list[dict]) -> str:
    graded = [e for e in entries if not e["error"]]
    scores = [e["score"] for e in entries]
    most = max((e["max_score"] for e in entries), default=0)
    items = [f"{len(entries)} students, {len(graded)} graded, "
             f"{len(entries) - len(graded)} could not be graded"]
    if scores:
        items.append(f"score out of {most:g}: mean {statistics.mean(scores):.1f}, "
                     f"median {statistics.median(scores):g}, "
                     f"full marks {sum(s == most for s in scores)}")
    return "<h2>Summary</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _scores(entries: list[dict]) -> str:
    most = max((e["max_score"] for e in entries), default=0) or 1
    figure = Figure(figsize=(7, 3))
    axes = figure.subplots()
    axes.hist([e["score"] for e in entries], bins=min(25, int(most)) or 1, range=(0, most),
              color="#4472c4", edgecolor="white")
    axes.set(xlabel="score", ylabel="students", title="Scores")
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    return "<h2>Scores</h2>" + _image(figure, "histogram of the students' scores")


def _checks(entries: list[dict]) -> str:
    rates = failure_rates(entries)
    if not rates:
        return "<h2>Checks</h2><p>No check was graded.</p>"
    figure = Figure(figsize=(7, 0.3 * len(rates) + 1))
    axes = figure.subplots()
    axes.barh([c for c, *_ in rates][::-1], [f / max(g, 1) for _, _, f, g in rates][::-1],
              color="#c0504d")
    axes.set(xlim=(0, 1), xlabel="fraction of graded submissions that failed",
             title="Failure rate per check")
    figure.tight_layout()
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{html.escape(t)}</td>"
                   f"<td class=\"n\">{f}/{g}</td><td class=\"n\">{f / max(g, 1):.0%}</td></tr>"
                   for c, t, f, g in rates)
    return ("<h2>Checks</h2>" + _image(figure, "failure rate per check")
            + "<table><tr><th>check</th><th>title</th><th>failed</th><th>rate</th></tr>"
            + rows + "</table>")


def _diagnoses(entries: list[dict]) -> str:
    found = diagnoses(entries)
    if not found:
        return "<h2>Most common diagnoses</h2><p>Every check passed.</p>"
    rows = "".join(
        f"<tr><td class=\"n\">{len(students)}</td><td>{html.escape(message)}</td>"
        f"<td>{html.escape(', '.join(checks))}</td>"
        f"<td>{html.escape(', '.join(students[:EXAMPLES]))}"
        f"{' …' if len(students) > EXAMPLES else ''}</td></tr>"
        for message, checks, students in found[:TOP_DIAGNOSES])
    more = len(found) - TOP_DIAGNOSES
    return ("<h2>Most common diagnoses</h2><p>Failure messages, their numbers shown as #, "
            "with the checks that gave them.</p><table><tr><th>students</th><th>diagnosis</th>"
            "<th>checks</th><th>for example</th></tr>" + rows + "</table>"
            + (f"<p>… and {more} rarer diagnoses.</p>" if more > 0 else ""))


def _times(entries: list[dict]) -> str:
    seconds = sorted(e["seconds"] for e in entries)
    if not any(seconds):
        return ""
    figure = Figure(figsize=(7, 2.5))
    axes = figure.subplots()
    axes.hist(seconds, bins=20, color="#9bbb59", edgecolor="white")
    axes.set(xlabel="seconds to grade one submission", ylabel="submissions",
             title="Grading time per submission")
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    slowest = sorted(entries, key=lambda e: -e["seconds"])[:5]
    text = (f"median {statistics.median(seconds):.1f} s, slowest {seconds[-1]:.1f} s, "
            f"total {sum(seconds):.0f} s of grading; slowest: "
            + ", ".join(f"{e['student']} ({e['seconds']:.1f} s)" for e in slowest))
    return ("<h2>Grading time</h2>" + _image(figure, "histogram of grading times")
            + f"<p>{html.escape(text)}</p>")


def _image(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
