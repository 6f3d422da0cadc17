"""`make student`: the student's own copy (made once, never overwritten, not paired with a .py)
and a JupyterLab set-up without nbgrader's instructor tools — the instructor's keeps them.
The browser test (test_browser.py) drives that JupyterLab; these check its parts quickly."""
import os
import subprocess
import sys

import nbformat

from autograder.authoring import course
from autograder.frontends import student

LESSON = course.LESSONS[0]


def test_prepare_copies_each_lesson_once_and_never_over_the_students_work(tmp_path):
    copies = student.prepare(tmp_path)
    assert copies == [tmp_path / f"{lesson}.ipynb" for lesson in course.LESSONS]
    copy = copies[0]
    nb = nbformat.read(copy, as_version=4)
    assert "jupytext" not in nb.metadata  # a save writes no .py beside it
    nb.cells[0].source = "my notes"
    nbformat.write(nb, copy)
    assert student.prepare(tmp_path) == []
    assert nbformat.read(copy, as_version=4).cells[0].source == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c.name for c in copies)


def test_lab_opens_the_lesson_in_work_with_the_student_config_first(tmp_path):
    command = student.lab_command(tmp_path, ["--no-browser"])
    assert f"--ServerApp.root_dir={tmp_path}" in command and command[-1] == "--no-browser"
    assert f"--LabApp.default_url=/lab/tree/{LESSON}.ipynb" in command
    env = student.lab_env({"JUPYTER_CONFIG_PATH": "/elsewhere", "MPLBACKEND": "Agg"})
    assert env["JUPYTER_CONFIG_PATH"].split(":") == [str(student.CONFIG), "/elsewhere"]
    assert "MPLBACKEND" not in env  # the kernel must keep its inline backend: figures show


def labextensions(env) -> str:
    done = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout + done.stderr


def test_nbgrader_ui_is_hidden_from_students_only():
    def nbgrader(text):
        return next(line for line in text.splitlines() if "@jupyter/nbgrader v" in line)

    assert "disabled" in nbgrader(labextensions(student.lab_env()))
    assert "enabled" in nbgrader(labextensions(None))  # the instructor's JupyterLab


def test_a_renamed_or_moved_notebook_is_the_students_copy_of_its_lesson(tmp_path):
    """Issue 19: renamed in JupyterLab, the student's notebook was taken for missing and the
    next `make student` opened a blank copy under the lesson's name."""
    first, second = student.prepare(tmp_path)
    renamed = tmp_path / "my lesson 1.ipynb"
    first.rename(renamed)
    (tmp_path / "notes.ipynb").write_text("not a notebook")  # no lesson: ignored, not a crash
    assert student.prepare(tmp_path) == [] and not first.exists()
    assert student.find(tmp_path, LESSON) == renamed
    assert f"--LabApp.default_url=/lab/tree/my%20lesson%201.ipynb" in student.lab_command(
        tmp_path, notebook=student.find(tmp_path, LESSON))

    # JupyterLab's Duplicate, saved later than the original, moved into a folder: the newest
    copy = tmp_path / "drafts" / f"{LESSON}-Copy1.ipynb"
    copy.parent.mkdir()
    copy.write_bytes(renamed.read_bytes())
    os.utime(renamed, (1, 1))
    assert student.find(tmp_path, LESSON) == copy
    assert student.find(tmp_path, second.stem) == second  # the other lesson is its own
    checkpoint = tmp_path / ".ipynb_checkpoints" / f"{LESSON}-checkpoint.ipynb"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(renamed.read_bytes())  # JupyterLab's, not the student's
    assert student.find(tmp_path, LESSON) == copy


def test_a_file_under_the_lessons_name_is_never_overwritten_whatever_it_holds(tmp_path):
    mine = tmp_path / f"{LESSON}.ipynb"
    mine.write_text("{}")  # no lesson in it any more
    student.prepare(tmp_path)
    assert mine.read_text() == "{}"
