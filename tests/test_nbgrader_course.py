"""The nbgrader course holds every lesson: each is its own assignment, autograded as the lesson
it is. Lesson 02 end to end (build, release, autograde, feedback, export) next to lesson 01 in
one course and one gradebook; a notebook handed in to the wrong assignment fails its student
alone, with a feedback page that says so."""
import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_nbgrader import filled

from autograder import lessons
from autograder.authoring.course import annotated_notebook
from autograder.frontends.nbgrader import course as nbcourse

REPO = Path(__file__).resolve().parent.parent
DNN, CNN = "01_mnist_dnn", "02_mnist_cnn"


def grade(root, assignment):
    return subprocess.run([sys.executable, "-m", "autograder.frontends.nbgrader.course", "grade",
                           "--assignment", assignment, "--course-dir", str(root)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)


def submit(root, student, assignment, nb):
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    nbcourse.build(root)  # every lesson of the registry
    releases = {}
    for lesson in (DNN, CNN):
        nbcourse.nbgrader("generate_assignment", lesson, course_dir=root, timeout=180)
        releases[lesson] = nbformat.read(root / "release" / lesson / f"{lesson}.ipynb", 4)
    submit(root, "ada", CNN, filled(releases[CNN], annotated_notebook(CNN)))
    submit(root, "bob", CNN, releases[CNN])                  # nothing filled in
    submit(root, "cy", CNN, filled(releases[DNN], annotated_notebook(DNN)))  # lesson 01's notebook
    submit(root, "ada", DNN, filled(releases[DNN], annotated_notebook(DNN)))
    done = {lesson: grade(root, lesson) for lesson in (CNN, DNN)}
    return {"root": root, "done": done}


def test_the_course_has_one_assignment_per_lesson():
    assert nbcourse.LESSONS == lessons.ids() and CNN in nbcourse.LESSONS


def test_each_assignment_is_graded_as_its_lesson_in_one_gradebook(course):
    cnn, dnn = course["done"][CNN], course["done"][DNN]
    assert dnn.returncode == 0, dnn.stdout + dnn.stderr
    assert cnn.returncode == 1, cnn.stdout + cnn.stderr  # cy handed in the wrong notebook
    assert "  cy: could not grade: " in cnn.stdout and "ada:" not in cnn.stdout
    with open(course["root"] / "grades.csv", newline="") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    assert float(rows[(CNN, "ada")]["raw_score"]) == lessons.get(CNN).max_score
    assert float(rows[(CNN, "ada")]["max_score"]) == lessons.get(CNN).max_score
    assert float(rows[(DNN, "ada")]["raw_score"]) == lessons.get(DNN).max_score == 25
    assert float(rows[(CNN, "bob")]["raw_score"]) == 0


def test_the_wrong_notebook_gets_a_feedback_page_naming_both_lessons(course):
    page = course["root"] / "feedback" / "cy" / CNN / f"{CNN}.html"
    text = page.read_text()
    assert "could not be graded" in text
    assert f"lesson {DNN}, not of lesson {CNN}" in text


def test_feedback_of_lesson_02_shows_its_checks_but_no_hidden_code(course):
    page = (course["root"] / "feedback" / "ada" / CNN / f"{CNN}.html").read_text()
    for check in lessons.get(CNN).checks:
        if not check.hidden:
            assert check.id in page
    assert 'check("hidden")' not in page


def test_a_failed_students_reason_is_the_graders_own_line_of_the_log():
    from autograder.frontends.nbgrader.autograde import what_failed

    log = ("[AutogradeApp | ERROR] There was an error processing assignment: x\n"
           "    autograder.engine.checks.UsageError: x.ipynb is a notebook of lesson 01_mnist_dnn,"
           " not of lesson 02_mnist_cnn: was the right notebook handed in?\n"
           "[AutogradeApp | ERROR] There was an error processing assignment 'a' for student 'b'\n"
           "[AutogradeApp | ERROR] Please see the the above traceback for details\n"
           "[AutogradeApp | ERROR] Error: more noise\n" * 2)
    assert what_failed(log)[-1].startswith("autograder.engine.checks.UsageError: x.ipynb is a")
    assert what_failed("[X | ERROR] kernel died\nok\n") == ["[X | ERROR] kernel died"]
