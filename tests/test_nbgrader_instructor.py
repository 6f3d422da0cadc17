"""What an instructor meets in the nbgrader course, with nbgrader's own commands and `python -m
autograder course grade`, on one course graded three times (about 5 minutes on 2 cores).

Round 1, from a Canvas zip: `forger`'s notebook (Canvas marked it LATE) floods 300 MB of output
and writes HTML and JavaScript that would forge its feedback page; `ada` hands in the reference;
`cy` hands in lesson 02's notebook under its own name. Round 2: ada hands in again and the grader
cannot start its sandbox (a 50 MB jail): not graded, the grader's fault. Round 3: ada hands in a
truncated notebook: rejected, the file's fault. Each time: the terminal, grades.csv, Canvas'
import file, the gradebook, the feedback page and the class report must say the same thing, and
never show an ungraded student as a zero or a score they no longer have.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from test_grader_cli import interrupt_when
from test_nbgrader import filled, nbgrader_grades, released_course

from autograder.authoring.course import annotated_notebook
from autograder.frontends.nbgrader import course as nbcourse

REPO = Path(__file__).resolve().parent.parent
LESSON, OTHER = "01_mnist_dnn", "02_mnist_cnn"
FORGER, ADA, CY = "101", "102", "103"  # Canvas user ids, the students' ids in the course

FLOOD = "import sys\nfor _ in range(300):\n    sys.stdout.write('x' * 1_000_000 + '\\n')\n"
FORGED_OUTPUT = (  # a banner fixed over the page's real score, a script, an image's onerror
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML('<div id=\"fake\" style=\"position:fixed;top:0;left:0;right:0;z-index:99;"
    "background:#fff;font-size:40px\">Score: 25 / 25</div><script>document.body.dataset.html"
    "=1</script><img src=x onerror=\"document.body.dataset.img=1\">'))\n"
    "display(Javascript('document.body.dataset.js = 1'))\n")
FORGED_MARKDOWN = ('<div style="position:fixed;bottom:0">Score: 25 / 25</div>\n'
                   '<script>document.body.dataset.md = 1</script>\n'
                   '<img src=y onerror="alert(1)">\n\n**my own notes**, `a < b`')


def course_grade(root, *args):
    return subprocess.run([sys.executable, "-m", "autograder", "course", "grade",
                           "--assignment", LESSON, "--course-dir", str(root), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)


def rows(path, key="student_id"):
    with open(path, newline="") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def page(root, student):
    return (root / "feedback" / student / LESSON / f"{LESSON}.html").read_text()


def snapshot(root, name, done):
    """What the instructor has after a round: terminal, files, gradebook (of every student)."""
    shot = {"done": done, "grades": rows(root / "grades.csv"),
            "canvas": (root / "canvas.csv").read_text(), "gradebook": {},
            "pages": {s: page(root, s) for s in (FORGER, ADA, CY)
                      if (root / "feedback" / s / LESSON).is_dir()},
            "report": (root / f"{name}.html").read_text()}
    for student in (FORGER, ADA):
        shot["gradebook"][student] = nbgrader_grades(root, student)
        shot.setdefault("autograded", {})[student] = auto_scores(root, student)
    return shot


def auto_scores(root, student):
    """grade_id -> the autograded score the gradebook holds (None: not graded)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(LESSON, LESSON, student)
        return {g.name: g.auto_score for g in nb.grades}


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("instructor")
    annotated, release = released_course(root)
    reference = filled(release, annotated)
    forger = filled(release, annotated)
    forger.cells[4:4] = [nbformat.v4.new_code_cell(FLOOD), nbformat.v4.new_code_cell(FORGED_OUTPUT),
                         nbformat.v4.new_markdown_cell(FORGED_MARKDOWN)]
    handed_in = {f"forgerfay_LATE_{FORGER}_5001_{LESSON}.ipynb": forger,
                 f"lovelaceada_{ADA}_5002_{LESSON}.ipynb": reference,
                 f"cycy_{CY}_5003_{OTHER}.ipynb": annotated_notebook(OTHER)}
    archive = root / "downloaded" / LESSON / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        for name, nb in handed_in.items():
            zf.writestr(name, nbformat.writes(nb))
    nbcourse.nbgrader("zip_collect", LESSON, course_dir=root, timeout=300)
    shots = {"root": root}
    shots[1] = snapshot(root, "r1", course_grade(root, "--workers", "2", "--report",
                                                   root / "r1.html"))
    shots["forger_autograded"] = nbformat.read(
        root / "autograded" / FORGER / LESSON / f"{LESSON}.ipynb", as_version=4)
    # rounds 2 and 3 are ada's: the others' folders go (the gradebook keeps their rows)
    for student in (FORGER, CY):
        shutil.move(root / "submitted" / student, root / f"away-{student}")
    ada = root / "submitted" / ADA / LESSON / f"{LESSON}.ipynb"
    reference.cells.append(nbformat.v4.new_markdown_cell("handed in again"))
    nbformat.write(reference, ada)
    with open(root / "nbgrader_config.py", "a") as f:  # the grader's sandbox cannot start
        f.write("\nc.GradeTestCells.memory_limit = 50\n")
    seen = []  # Ctrl-C while ada's nbgrader autograde runs: it is stopped, nothing is kept

    def autograding(process):
        seen[:] = autograde_processes(process.pid)
        return bool(seen)

    shots["interrupted"] = interrupt_when(
        ["course", "grade", "--assignment", LESSON, "--course-dir", root], autograding)
    shots["left running"] = [pid for pid in seen if alive(pid)]
    started = time.time()
    shots[2] = snapshot(root, "r2", course_grade(root, "--report", root / "r2.html"))
    shots[2]["cache"] = [json.loads(line) for line in open(root / "autograde-cache.jsonl")]
    shots[2]["started"] = started
    nbcourse.build(root, {LESSON: annotated})  # the config as it was
    ada.write_text(nbformat.writes(reference)[:5000])  # cut short: not JSON any more
    shots[3] = snapshot(root, "r3", course_grade(root, "--report", root / "r3.html"))
    return shots


def alive(pid: int) -> bool:
    """Running, or stopped, but not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def autograde_processes(root_pid: int) -> list[int]:
    """The `nbgrader autograde` processes below `root_pid`."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    below = {root_pid}
    for _ in range(6):  # course grade -> nbgrader (a thread's child) -> its kernel ...
        below |= {pid for pid, parent in parents.items() if parent in below}
    return [pid for pid in below - {root_pid} if b"nbgrader\0autograde" in commands.get(pid, b"")]


class Text(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.parts, self.tags = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.parts.append(data)

    def __str__(self):
        return " ".join(" ".join(self.parts).split())


# --- round 1: a class from Canvas -----------------------------------------------------------


def test_the_terminal_counts_who_was_graded_and_who_was_not(rounds):
    done = rounds[1]["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "autograded 2 of 3 students (3 now, 0 unchanged" in done.stdout, done.stdout
    assert "1 could not be graded, the notebook handed in" in done.stdout
    assert "not graded: the grader" not in done.stdout


def test_a_notebook_of_another_lesson_under_its_own_name_is_named_on_its_page(rounds):
    """nbgrader skipped 02_mnist_cnn.ipynb and failed with 'No notebooks found': the page
    showed that traceback and told the student the notebook might be damaged."""
    text = str(Text(rounds[1]["pages"][CY]))
    assert (f"no {LESSON}.ipynb was handed in for assignment {LESSON}, only {OTHER}.ipynb, a "
            f"notebook of lesson {OTHER}: hand in your notebook of lesson {LESSON}") in text
    assert "could not be graded" in text
    assert "Traceback" not in text and "damaged" not in text and "No notebooks" not in text
    row = rounds[1]["grades"][CY]
    assert row["status"] == "rejected" and row["score"] == "" and "lesson 02_mnist_cnn" in row[
        "error"]


def test_a_flood_of_output_changes_no_grade(rounds):
    """300 MB printed in a cell: nbgrader failed the notebook when the output was still
    arriving 4 s after the cell ended ('Timeout waiting for IOPub output'), and the gradebook
    held 0/25 where the CLI gives 25."""
    assert rounds[1]["gradebook"][FORGER] == rounds[1]["gradebook"][ADA]
    assert sum(score for score, _ in rounds[1]["gradebook"][FORGER].values()) == 25
    flood = next(c for c in rounds["forger_autograded"].cells if c.source == FLOOD)
    text = "".join(o.get("text", "") for o in flood.outputs)
    assert "left out the rest of this cell's output" in text and len(text) < 2_000_000


def test_the_feedback_page_shows_what_the_notebook_wrote_but_runs_none_of_it(rounds):
    html = rounds[1]["pages"][FORGER]
    tags = Text(html).tags
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]  # no onerror=
    assert not [attrs for tag, attrs in tags if "position:fixed" in attrs.get("style", "")]
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, re.S)
    assert scripts and not [s for s in scripts if "dataset" in s]  # the page's own scripts only
    text = str(Text(html))
    assert "my own notes" in text  # the student's Markdown is still shown
    assert f"{LESSON} (Score: 25.0 / 25.0)" in text


@pytest.mark.browser
def test_the_forged_feedback_page_runs_nothing_in_a_real_browser(rounds):
    """Debian's chromium (tests/student_lab.py): missing, the test fails, it never skips."""
    from student_lab import SCREENSHOTS, launch, missing_browser

    problem = missing_browser()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    path = rounds["root"] / "feedback" / FORGER / LESSON / f"{LESSON}.html"
    dialogs = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            tab.goto(path.as_uri())
            tab.wait_for_load_state("load")
            tab.wait_for_timeout(1000)
            ran = tab.evaluate("Object.assign({}, document.body.dataset)")
            fixed = tab.evaluate("Array.from(document.querySelectorAll('body *')).filter(e => "
                                 "getComputedStyle(e).position === 'fixed').map(e => "
                                 "e.textContent)")
            top = tab.evaluate("document.elementFromPoint(550, 20).textContent")
            tab.screenshot(path=SCREENSHOTS / "forged-feedback.png", full_page=False)
        finally:
            browser.close()
    assert ran == {} and not dialogs, (ran, dialogs)
    assert not [text for text in fixed if "25 / 25" in text], fixed
    assert "Score: 25 / 25" not in top


def test_canvas_ids_names_and_late_marks_are_kept(rounds):
    """The student id is Canvas' user id, not the sortable name (which two students can share);
    Canvas' LATE mark is kept; the names go to the gradebook."""
    grades = rounds[1]["grades"]
    assert set(grades) == {FORGER, ADA, CY}
    assert grades[FORGER]["last_name"] == "forgerfay" and grades[FORGER]["lms_late"] == "LATE"
    assert grades[ADA]["lms_late"] == "" and grades[ADA]["status"] == "graded"
    assert grades[ADA]["score"] == grades[ADA]["max_score"] == "25.0"


def test_canvas_gets_its_own_gradebook_import_keyed_by_user_id(rounds):
    table = list(csv.reader(rounds[1]["canvas"].splitlines()))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", LESSON]
    assert table[1] == ["Points Possible", "", "", "", "", "25"]
    by_id = {row[1]: row for row in table[2:]}
    assert by_id[FORGER][0] == "forgerfay" and by_id[FORGER][5] == "25"
    assert by_id[CY][5] == ""  # not graded: a blank Canvas leaves as it is, not a 0


def test_the_class_report_counts_the_rejected_apart(rounds):
    text = str(Text(rounds[1]["report"]))
    assert "3 students, 2 graded, 1 could not be graded (the file handed in)" in text
    assert "mean 25.0" in text  # cy is not a zero


# --- round 2: the grader fails on a regrade ------------------------------------------------


def test_ctrl_c_stops_nbgrader_and_says_what_was_kept(rounds):
    returncode, out, err, seconds = rounds["interrupted"]
    assert returncode == 130, out + err
    assert "interrupted: 0 graded results kept" in err and "Traceback" not in err, err
    assert rounds["left running"] == []  # ada's nbgrader, stopped with the run


def test_a_regrade_the_grader_failed_is_not_graded_and_loses_its_old_score(rounds):
    done = rounds[2]["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "autograded 0 of 1 students" in done.stdout, done.stdout
    assert "1 not graded: the grader or the machine failed, not the student" in done.stdout
    assert f"  {ADA}: not graded: " in done.stdout
    assert "(the gradebook no longer holds their earlier score, 25/25)" in done.stdout
    row = rounds[2]["grades"][ADA]
    assert row["status"] == "not graded" and row["score"] == row["raw_score"] == ""
    assert row["error"].startswith("not graded: ")
    assert set(rounds[2]["autograded"][ADA].values()) == {None}  # not 25, not 0
    assert rounds[1]["autograded"][ADA] == rounds[1]["autograded"][FORGER]
    canvas = {row[1]: row for row in csv.reader(rounds[2]["canvas"].splitlines())}
    assert canvas[ADA][5] == "" and canvas[FORGER][5] == "25"  # the others are as they were
    assert "Attribute 'checksum' for cell check_hidden" not in done.stderr  # its log is shown


def test_the_students_page_does_not_blame_them(rounds):
    text = str(Text(rounds[2]["pages"][ADA]))
    assert f"{LESSON}: not graded yet" in text and "the grader failed, not your notebook" in text
    assert "nothing to do" in text and "damaged" not in text


def test_a_grader_failure_is_never_kept(rounds):
    ada = [entry for entry in rounds[2]["cache"] if entry["student"] == ADA]
    assert ada and all(entry["graded_at"] < rounds[2]["started"] for entry in ada)
    text = str(Text(rounds[2]["report"]))
    assert "1 not graded (the grader or the machine failed: grade them again)" in text


# --- round 3: a damaged notebook ------------------------------------------------------------


def test_a_damaged_notebook_is_rejected_and_its_page_says_how_to_mend_it(rounds):
    done = rounds[3]["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 could not be graded, the notebook handed in" in done.stdout, done.stdout
    assert f"  {ADA}: could not grade: " in done.stdout
    row = rounds[3]["grades"][ADA]
    assert row["status"] == "rejected" and row["score"] == ""
    text = str(Text(rounds[3]["pages"][ADA]))
    assert "could not be graded" in text and "it is damaged" in text


# --- another LMS -----------------------------------------------------------------------------


def test_another_lms_names_are_kept_from_its_own_regular_expression(tmp_path, monkeypatch):
    """Moodle's folders, with the instructor's named_regexp: the names it reads reach the
    gradebook (nbgrader's zip_collect reads them and drops them)."""
    from types import SimpleNamespace

    from nbgrader.api import Gradebook
    from traitlets.config import Config, Configurable

    from autograder.frontends.nbgrader.lms import CanvasCollector

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # alembic
    config = Config()
    config.FileNameCollectorPlugin.named_regexp = (
        r".*/(?P<first_name>\w+) (?P<last_name>\w+)_(?P<student_id>\d+)_assignsubmission_file_/"
        r"(?P<file_id>[^/]+)\.ipynb$")
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"

    class ZipCollect(Configurable):  # what the collector reads of nbgrader's ZipCollectApp
        coursedir = SimpleNamespace(db_url=db, course_id="mnist", root=str(tmp_path),
                                    assignment_id=LESSON)

    collector = CanvasCollector(parent=ZipCollect(config=config))
    info = collector.collect(f"{tmp_path}/x/Ada Lovelace_4242_assignsubmission_file_/{LESSON}.ipynb")
    assert (info["student_id"], info["file_id"]) == ("4242", LESSON)
    with Gradebook(db) as gradebook:
        student = gradebook.find_student("4242")
        assert (student.first_name, student.last_name) == ("Ada", "Lovelace")


def test_a_killed_nbgraders_copies_of_notebooks_are_swept(tmp_path):
    """The graded copy of a student's notebook lives in a folder named after the process that
    made it: when nbgrader is killed with -9 before removing it, the next grader sweeps it."""
    from autograder.engine import leftovers
    from autograder.frontends.nbgrader.preprocessors import graded_copy

    notebook = tmp_path / "01_mnist_dnn.ipynb"
    notebook.write_text('{"cells": []}')
    with graded_copy({}, str(notebook)) as copy:
        folder = Path(copy).parent
        assert Path(copy).read_text() == notebook.read_text()
        match = leftovers.FOLDER.match(folder.name)
        assert match and match.group(1) == leftovers.owner()
    assert not folder.exists()
    dead = subprocess.run([sys.executable, "-c", "from autograder.engine import leftovers; "
                           "print(leftovers.private_dir('graded'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert Path(dead).is_dir()
    assert Path(dead) in leftovers.sweep_dirs() and not Path(dead).exists()
