"""`python -m autograder.frontends.nbgrader.course grade --workers 2`: nbgrader's own autograde, two students at
once, each in a private copy of the course, merged into the course's gradebook. On the class of
test_nbgrader.py it must record what a serial `nbgrader autograde` records, so that
`generate_feedback` and `export` work as usual; a late student is then autograded alone.
"""
import csv
import inspect
import json
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from test_nbgrader import LESSON, make_class, nbgrader_grades

from autograder.frontends.nbgrader import autograde as nbautograde
from autograder.frontends.nbgrader import course as nbcourse
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

REPO = Path(__file__).resolve().parent.parent


def grade(course_dir, *args):
    command = [sys.executable, "-m", "autograder.frontends.nbgrader.course", "grade",
               "--assignment", LESSON, "--course-dir", str(course_dir), *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    """The same released course and class, autograded serially by nbgrader and in parallel."""
    from autograder.authoring.course import annotated_notebook

    root = tmp_path_factory.mktemp("parallel")
    serial, parallel = root / "serial", root / "parallel"
    annotated = annotated_notebook(LESSON)
    nbcourse.build(serial, {LESSON: annotated})
    nbcourse.nbgrader("generate_assignment", LESSON, course_dir=serial, timeout=120)
    release = nbformat.read(serial / "release" / LESSON / f"{LESSON}.ipynb", as_version=4)
    students = the_class(release, annotated, serial)
    for student, nb in students.items():
        folder = serial / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{LESSON}.ipynb")
    shutil.copytree(serial, parallel)

    start = time.perf_counter()
    nbcourse.nbgrader("autograde", LESSON, course_dir=serial, timeout=1200)
    serial_s = time.perf_counter() - start
    nbcourse.nbgrader("generate_feedback", LESSON, course_dir=serial, timeout=300)
    nbcourse.nbgrader("export", "--to", "grades.csv", course_dir=serial, timeout=120)
    start = time.perf_counter()
    done = grade(parallel, "--workers", "2", "--report", root / "report.html")
    parallel_s = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\n{len(students)} students: nbgrader autograde {serial_s:.1f} s; nbcourse grade "
          f"--workers 2 (autograde + feedback + export) {parallel_s:.1f} s")
    return {"serial": serial, "parallel": parallel, "students": students, "root": root,
            "output": done}


def the_class(release, annotated, course_dir):
    """test_nbgrader.py's class (its newer make_class also takes the course folder)."""
    takes_folder = len(inspect.signature(make_class).parameters) > 2
    return make_class(release, annotated, *([course_dir] if takes_folder else []))


def export(course_dir):
    with open(course_dir / "grades.csv", newline="") as f:
        return {row["student_id"]: (row["raw_score"], row["score"], row["max_score"])
                for row in csv.DictReader(f)}


def test_the_gradebook_holds_what_serial_nbgrader_records(courses):
    n = len(courses["students"])
    assert f"autograded {n} of {n} students ({n} now, 0 unchanged" in courses["output"].stdout
    for student in courses["students"]:
        assert nbgrader_grades(courses["parallel"], student) == nbgrader_grades(
            courses["serial"], student), student
    assert export(courses["parallel"]) == export(courses["serial"])


CHECK_LINE = re.compile(r"^([✓✗]) (\w+)(?: \(hidden\))? \[([\d.]+)/([\d.]+)\]", re.M)


def cards(cells) -> list:
    """Each test cell's verdicts and points exactly, and its messages up to their figures: some
    inputs are drawn from a secret per grading ("on 1237 samples accuracy returned 1088"), so
    two gradings of one notebook quote other numbers, and wrap their lines elsewhere."""
    out = []
    for cell in cells:
        if not cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        results = [o["data"]["text/plain"] for o in cell.get("outputs", [])
                   if o.get("output_type") == "execute_result"]
        out.append((CHECK_LINE.findall(text), " ".join(re.sub(r"\d+", "#", text).split()),
                    results))
    return out


def test_test_cells_and_feedback_are_those_of_serial_nbgrader(courses):
    for student in courses["students"]:
        path = Path("autograded", student, LESSON, f"{LESSON}.ipynb")
        ours, theirs = (nbformat.read(courses[c] / path, as_version=4).cells
                        for c in ("parallel", "serial"))
        assert cards(ours) == cards(theirs), student
        feedback = courses["parallel"] / "feedback" / student / LESSON / f"{LESSON}.html"
        assert "Score:" in feedback.read_text(), student


def test_the_class_report_lists_every_student_and_check(courses):
    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts = []

        def handle_data(self, data):
            self.parts.append(data)

    page = Text()
    page.feed((courses["root"] / "report.html").read_text())
    text = " ".join("".join(page.parts).split())
    assert f"{len(courses['students'])} students, {len(courses['students'])} graded" in text
    assert "batch_independence" in text and "min_test_accuracy" in text
    assert "softmaxdim0" in text  # an example student of a common diagnosis


def test_a_late_student_is_autograded_alone(courses):
    parallel = courses["parallel"]
    before = {s: nbgrader_grades(parallel, s) for s in courses["students"]}
    late = parallel / "submitted" / "latecomer" / LESSON
    shutil.copytree(parallel / "submitted" / "reference" / LESSON, late)
    done = grade(parallel, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(courses["students"])
    assert f"autograded {n + 1} of {n + 1} students (1 now, {n} unchanged" in done.stdout
    cache = [json.loads(line) for line in open(parallel / "autograde-cache.jsonl")]
    assert [entry["student"] for entry in cache][-1] == "latecomer" and len(cache) == n + 1
    assert nbgrader_grades(parallel, "latecomer") == nbgrader_grades(parallel, "reference")
    assert {s: nbgrader_grades(parallel, s) for s in courses["students"]} == before
    assert set(export(parallel)) == {*courses["students"], "latecomer"}


def test_a_merge_replaces_only_that_students_submission(courses, tmp_path):
    """merge_gradebook where the student already has a submission: it is replaced, the
    others are untouched."""
    main = tmp_path / "main.db"
    shutil.copy(courses["serial"] / "gradebook.db", main)
    nbautograde.merge_gradebook(main, courses["parallel"] / "gradebook.db", LESSON, "cheat")
    for student in courses["students"]:
        assert nbgrader_grades_at(main, student) == nbgrader_grades(courses["serial"], student)


def nbgrader_grades_at(db, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        nb = gb.find_submission_notebook(LESSON, LESSON, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}


def test_the_class_report_reads_the_cards_that_test_cells_print():
    """nbautograde.card_checks parses what report.group_card writes in a test cell."""
    from autograder.engine.checks import CheckResult
    from autograder.engine.report import group_card

    checks = [c for c in L01.checks if c.group == "model"]
    undefined = "MyModel is not defined: your submission must define MyModel " * 3  # wraps
    messages = {checks[1].id: undefined, checks[2].id: undefined, checks[4].id: checks[4].fail}
    results = [CheckResult(c, c.id not in messages, messages.get(c.id, c.success))
               for c in checks]
    card = "\n".join(group_card("model", results))
    parsed = nbautograde.card_checks(card)
    assert [(c["id"], c["passed"]) for c in parsed] == [(r.check.id, r.passed) for r in results]
    for check, result in zip(parsed, results):
        if not result.passed:  # the hint, unwrapped, also where the card says it once for two
            assert check["message"] == " ".join(result.message.split()), card
