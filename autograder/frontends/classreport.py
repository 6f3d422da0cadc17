"""The class at a glance: one self-contained HTML file for the instructor.

Who was graded and who was not (the grader's failures apart from the files that cannot be
graded, and neither counted as a zero), the score histogram and statistics of the graded, failure
rate per check, the most common diagnoses (failure messages that differ only in their numbers,
"accuracy 0.41" and "accuracy 0.37", count as one and show the range, "accuracy 0.37–0.41"), a
table of every student, and grading time per submission. Figures are matplotlib PNGs embedded
as base64: the file opens offline and can be mailed. Everything a student controls (names,
messages) is escaped.

An entry is one student: {"student", "status" (report.GRADED, NOT_GRADED or REJECTED), "score"
(None unless graded), "max_score", "error", "seconds", "note",
"checks": [{"id", "title", "passed", "message"}, ...]} — `entry` builds it from a batch result,
`autograder.frontends.nbgrader.autograde.class_entries` from an autograded course.
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

from autograder.engine import report

# a number standing alone ("0.41", "dim=1", "[28*B, 28]"), not a part of a word or a name
# ("conv2d", "autograder-x1y2", "MyModel2")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?(?![\w])")
TOP_DIAGNOSES = 15
EXAMPLES = 3


def entry(result: dict) -> dict:
    """A batch result (autograder.frontends.batch.grade_payload) as a report entry."""
    row, graded = result["row"], result.get("report") or {}
    status = row.get("status", report.GRADED)
    return {"student": result["student"], "status": status,
            "score": float(row.get("score") or 0) if status == report.GRADED else None,
            "max_score": float(graded.get("max_score") or row.get("max_score") or 0),
            "error": row.get("error", ""), "seconds": float(result.get("seconds") or 0),
            "note": result.get("note", ""), "checks": graded.get("checks", [])}


def graded(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e["status"] == report.GRADED]


def normalise(message: str) -> str:
    """A diagnosis without its numbers or extra spaces, cut to a readable length."""
    return _cut(NUMBER.sub("#", " ".join(message.split())))


def _cut(text: str) -> str:
    return text if len(text) <= 240 else text[:239] + "…"


def shown(messages: list[str]) -> str:
    """The diagnosis that `messages` (equal but for their numbers) share, as a reader wants it:
    a number they all have is shown ("use dim=1"), one that varies as its range ("accuracy
    0.37–0.41")."""
    texts = [" ".join(m.split()) for m in messages]
    parts = NUMBER.split(texts[0])
    numbers = list(zip(*(NUMBER.findall(t) for t in texts)))
    if len(numbers) != len(parts) - 1:  # equal only in their first 240 characters
        return normalise(texts[0])
    out = [parts[0]]
    for values, part in zip(numbers, parts[1:]):
        out += [_span(values), part]
    return _cut("".join(out))


def _span(values: tuple[str, ...]) -> str:
    if len(set(values)) == 1:
        return values[0]
    try:
        ordered = sorted(values, key=lambda v: float(v.rstrip("%").replace(",", "")))
    except ValueError:
        return "#"
    return f"{ordered[0]}–{ordered[-1]}"


def diagnoses(entries: list[dict]) -> list[tuple[str, list[str], list[str]]]:
    """(the diagnosis, the checks that gave it, the students who got it), most students first,
    for the graded students (see `shown` for how a diagnosis reads)."""
    checks, students = collections.defaultdict(list), collections.defaultdict(list)
    messages = collections.defaultdict(list)
    for e in graded(entries):
        for check in e["checks"]:
            if check["passed"]:
                continue
            key = normalise(check.get("message", ""))
            messages[key].append(check.get("message", ""))
            if check["id"] not in checks[key]:
                checks[key].append(check["id"])
            if e["student"] not in students[key]:
                students[key].append(e["student"])
    ranked = sorted(students, key=lambda key: (-len(students[key]), key))
    return [(shown(messages[key]), checks[key], students[key]) for key in ranked]


def failure_rates(entries: list[dict]) -> list[tuple[str, str, int, int]]:
    """(check id, title, failed, graded) in catalogue order (the first entry's order)."""
    order, titles = {}, {}
    failed, counted = collections.Counter(), collections.Counter()
    for e in graded(entries):
        for check in e["checks"]:
            order.setdefault(check["id"], len(order))
            titles.setdefault(check["id"], check.get("title", ""))
            counted[check["id"]] += 1
            failed[check["id"]] += not check["passed"]
    return [(c, titles[c], failed[c], counted[c]) for c in sorted(order, key=order.get)]


def write(entries: list[dict], path, title: str = "class report") -> Path:
    path = Path(path)
    path.write_text(render(entries, title))
    return path


def render(entries: list[dict], title: str) -> str:
    sections = [_summary(entries), _not_graded(entries), _scores(entries), _checks(entries),
                _diagnoses(entries), _students(entries), _times(entries)]
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


STATUS_WORDS = {report.NOT_GRADED: "not graded (the grader or the machine failed: grade them "
                                   "again)",
                report.REJECTED: "could not be graded (the file handed in)"}


def _summary(entries: list[dict]) -> str:
    scores = [e["score"] for e in graded(entries)]
    most = max((e["max_score"] for e in entries), default=0)
    count = collections.Counter(e["status"] for e in entries)
    items = [f"{len(entries)} students, {len(scores)} graded"
             + "".join(f", {count[status]} {words}" for status, words in STATUS_WORDS.items()
                       if count[status])]
    if scores:
        items.append(f"score of the {len(scores)} graded, out of {most:g}: mean "
                     f"{statistics.mean(scores):.1f}, median {statistics.median(scores):g}, "
                     f"full marks {sum(s == most for s in scores)}, zero {scores.count(0)}")
    return "<h2>Summary</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _not_graded(entries: list[dict]) -> str:
    """Who has no score, and why, before any statistics: not one of them is a zero."""
    missing = [e for e in entries if e["status"] != report.GRADED]
    if not missing:
        return ""
    rows = "".join(f"<tr><td>{html.escape(e['student'])}</td><td>{html.escape(e['status'])}"
                   f"</td><td>{html.escape(e['error'])}</td></tr>" for e in missing)
    return ("<h2>Not graded</h2><p>No score, and left out of every figure below.</p><table>"
            "<tr><th>student</th><th>status</th><th>why</th></tr>" + rows + "</table>")


def _scores(entries: list[dict]) -> str:
    most = max((e["max_score"] for e in entries), default=0) or 1
    figure = Figure(figsize=(7, 3))
    axes = figure.subplots()
    axes.hist([e["score"] for e in graded(entries)], bins=min(25, int(most)) or 1,
              range=(0, most), color="#4472c4", edgecolor="white")
    axes.set(xlabel="score", ylabel="students", title="Scores of the graded students")
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    return "<h2>Scores</h2>" + _image(figure, "histogram of the graded students' scores")


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
        return "<h2>Most common diagnoses</h2><p>Every check of the graded passed.</p>"
    rows = "".join(
        f"<tr><td class=\"n\">{len(students)}</td><td>{html.escape(message)}</td>"
        f"<td>{html.escape(', '.join(checks))}</td>"
        f"<td>{html.escape(', '.join(students[:EXAMPLES]))}"
        f"{' …' if len(students) > EXAMPLES else ''}</td></tr>"
        for message, checks, students in found[:TOP_DIAGNOSES])
    more = len(found) - TOP_DIAGNOSES
    return ("<h2>Most common diagnoses</h2><p>Failure messages of the graded, those that differ "
            "only in their numbers counted as one (a number that varies shows its range), with "
            "the checks that gave them.</p><table><tr><th>students</th><th>diagnosis</th>"
            "<th>checks</th><th>for example</th></tr>" + rows + "</table>"
            + (f"<p>… and {more} rarer diagnoses.</p>" if more > 0 else ""))


def _students(entries: list[dict]) -> str:
    """One row per student: what the gradebook holds, and which checks failed."""
    rows = []
    for e in sorted(entries, key=lambda e: e["student"]):
        score = f"{e['score']:g}/{e['max_score']:g}" if e["score"] is not None else "—"
        failed = ", ".join(c["id"] for c in e["checks"] if not c["passed"])
        said = e["error"] or failed or "every check passed"
        note = f" (note: {e['note']})" if e.get("note") else ""
        rows.append(f"<tr><td>{html.escape(e['student'])}</td><td>{html.escape(e['status'])}"
                    f"</td><td class=\"n\">{score}</td><td>{html.escape(said + note)}</td>"
                    f"<td class=\"n\">{e['seconds']:.1f}</td></tr>")
    return ("<h2>Students</h2><table><tr><th>student</th><th>status</th><th>score</th>"
            "<th>failed checks, or why not graded</th><th>seconds</th></tr>" + "".join(rows)
            + "</table>")


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
