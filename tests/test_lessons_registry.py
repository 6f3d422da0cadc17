"""One registry of lessons, no default: a notebook says which lesson it is, and every front end
grades it as that lesson or refuses with a message that names the fix."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import lessons
from autograder.authoring import course
from autograder.engine import submission
from autograder.engine.checks import UsageError
from autograder.engine.lesson import Lesson
from submissions.catalogue import render

REPO = Path(__file__).resolve().parent.parent


def test_every_registered_lesson_is_a_typed_record_with_its_solution_and_lesson_files():
    for lesson_id in lessons.ids():
        lesson = lessons.get(lesson_id)
        assert isinstance(lesson, Lesson) and lesson.id == lesson_id
        assert lesson.checks and lesson.max_score > 0 and lesson.groups
        assert (REPO / "solutions" / f"{lesson_id}.py").is_file()
        assert (REPO / "lessons" / f"{lesson_id}.ipynb").is_file()
        assert any(check.hidden for check in lesson.checks)


def test_an_unknown_lesson_is_an_error_naming_the_known_ones():
    with pytest.raises(UsageError, match="known lessons: 01_mnist_dnn"):
        lessons.get("03_no_such_lesson")


def test_a_record_refuses_duplicate_check_ids():
    lesson = lessons.get("01_mnist_dnn")
    with pytest.raises(ValueError, match="duplicate check ids"):
        Lesson(**{**lesson.__dict__, "checks": lesson.checks + lesson.checks[:1]})


def notebook(tmp_path, source: str, metadata=None, name="nb.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata.update(metadata or {})
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def detect(path, wanted=None) -> str:
    return lessons.detect(submission.load(path), wanted).id


@pytest.mark.parametrize("lesson_id", lessons.ids())
def test_each_generated_lesson_and_its_solution_declare_their_own_lesson(lesson_id):
    assert detect(course.lesson_path(lesson_id, ".ipynb")) == lesson_id
    assert detect(course.lesson_path(lesson_id, ".py")) == lesson_id
    assert detect(course.solution_path(lesson_id)) == lesson_id
    nb = nbformat.read(course.lesson_path(lesson_id, ".ipynb"), as_version=4)
    assert nb.metadata["autograder"] == {"lesson": lesson_id}


def test_the_metadata_alone_or_the_check_import_alone_names_the_lesson(tmp_path):
    by_metadata = notebook(tmp_path, "x = 1", {"autograder": {"lesson": "01_mnist_dnn"}}, "a.ipynb")
    by_import = notebook(tmp_path, "from autograder.lessons.mnist_dnn import check\ncheck('fit')",
                         name="b.ipynb")
    assert detect(by_metadata) == detect(by_import) == "01_mnist_dnn"


def test_a_file_that_names_no_lesson_needs_one_and_says_how(tmp_path):
    silent = notebook(tmp_path, "x = 1")
    with pytest.raises(UsageError, match="cannot tell which lesson nb.ipynb belongs to.*--lesson"):
        detect(silent)
    assert detect(silent, "01_mnist_dnn") == "01_mnist_dnn"  # the instructor says which


def test_a_notebook_of_another_or_an_unknown_lesson_is_refused_not_graded_as_lesson_01(tmp_path):
    unknown = notebook(tmp_path, "from autograder.lessons.mnist_rnn import check", name="u.ipynb")
    with pytest.raises(UsageError, match="unknown lesson"):
        detect(unknown)
    forged = notebook(tmp_path, "x = 1", {"autograder": {"lesson": "99_x"}}, "f.ipynb")
    with pytest.raises(UsageError, match="unknown lesson"):
        detect(forged, "01_mnist_dnn")
    odd = notebook(tmp_path, "x = 1", {"autograder": {"lesson": ["01_mnist_dnn"]}}, "o.ipynb")
    with pytest.raises(UsageError, match="cannot tell"):  # malformed metadata declares nothing
        detect(odd)


def test_a_wrong_lesson_flag_is_refused_with_both_names(tmp_path, monkeypatch):
    path = notebook(tmp_path, "x = 1", {"autograder": {"lesson": "01_mnist_dnn"}})
    monkeypatch.setitem(lessons.REGISTRY, "02_other", "autograder.lessons.mnist_dnn")
    with pytest.raises(UsageError, match="notebook of lesson 01_mnist_dnn, not of lesson 02_other"):
        detect(path, "02_other")


def test_the_cli_grades_as_the_declared_lesson_and_exits_2_when_it_cannot_tell(tmp_path):
    silent = tmp_path / "silent.py"
    silent.write_text(render("reference").replace(
        "from autograder.lessons.mnist_dnn import check", "pass"))
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(silent)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert "cannot tell which lesson silent.py belongs to" in done.stderr
    assert "--lesson" in done.stderr and "Traceback" not in done.stderr


def test_batch_without_lesson_takes_the_one_the_class_declares_and_refuses_a_mix(tmp_path):
    from autograder.frontends.batch import class_lesson

    a = notebook(tmp_path, "x = 1", {"autograder": {"lesson": "01_mnist_dnn"}}, "a.ipynb")
    silent = notebook(tmp_path, "x = 1", name="s.ipynb")
    assert class_lesson([a, silent]) == "01_mnist_dnn"
    with pytest.raises(UsageError, match="no submission says which lesson"):
        class_lesson([silent])


def test_the_pytest_plugin_collects_only_the_submissions_lesson(tmp_path):
    path = notebook(tmp_path, "from autograder.lessons.mnist_dnn import check", name="n.ipynb")
    done = subprocess.run([sys.executable, "-m", "pytest", "autograder", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "--submission", str(path)],
                          capture_output=True, text=True, cwd=REPO)
    collected = [line for line in done.stdout.splitlines() if "::test_check[" in line]
    assert len(collected) == len(lessons.get("01_mnist_dnn").checks), done.stdout


def test_the_readme_lists_every_lesson_with_its_points():
    from autograder.engine.checks import format_points

    readme = (REPO / "README.md").read_text()
    rows = {line.split("]")[0].removeprefix("| ["): line for line in readme.splitlines()
            if line.startswith("| [") and "](lessons/" in line}
    assert sorted(rows) == sorted(lessons.ids())
    for lesson_id, row in rows.items():
        assert f"(lessons/{lesson_id}.ipynb)" in row
        assert row.rstrip().endswith(f"| {format_points(lessons.get(lesson_id).max_score)} |")
