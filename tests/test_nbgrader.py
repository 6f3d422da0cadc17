"""The nbgrader course, end to end, with nbgrader's own commands in a temporary course folder.

build -> generate_assignment -> zip_collect (an LMS download) -> autograde -> generate_feedback
-> export, on a small class: the reference solution, the unfilled lesson, buggy submissions
from tests/submissions/, and one that tampered with its test cells. nbgrader's points must be
those of `python -m autograder grade` on the same notebooks.
"""
import ast
import copy
import csv
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from submissions.catalogue import render

import autograder.engine.grading

from autograder.frontends.nbgrader import course as nbcourse
from autograder.engine.checks import CheckResult
from autograder.frontends.nbgrader.preprocessors import (GRADED, GradeTestCells, set_parameters,
                                               without_check_calls)
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

REPO = Path(__file__).resolve().parent.parent
LESSON = "01_mnist_dnn"
BUGGY = {  # student id (no "_": the LMS file names use it as separator) -> catalogue variant
    "softmaxdim0": "softmax_dim0",    # the original's bug: fails batch_independence and hidden
    "accuracycount": "accuracy_count",  # partial credit inside a group: 1 of its 4 points
}
# replaces `check` in its kernel, so that the test cells print nothing and return nothing (which
# nbgrader alone would score as full marks); gaps 2 and 3 unfilled
CHEAT = ("import autograder.frontends.selfcheck as _s\n_s.check = lambda *a, **k: None\n\n"
         "class MyModel(nn.Module):\n    pass\n")
BY_NAME = r"(?:.*/)?(?P<student_id>[^/_]+)_(?:(?i:late)_)?\d+_\d+_(?P<file_id>[^/]+?)\.ipynb$"
CHECK_CALL = re.compile(r"""^\s*check\(\s*["'](\w+)["']\s*\)\s*$""", re.M)
# the line check() prints per check: "✓ output_shape [2/2] ..."
CHECK_LINE = re.compile(r"^([✓✗]) (\w+)(?: \(hidden\))? \[([\d.]+)/([\d.]+)\]", re.M)


# --- small transforms, no kernel ---------------------------------------------------------------


def test_set_parameters_rewrites_only_the_named_values():
    source = "EPOCHS = 10  # full run\nBATCH_SIZE = 64\nSEED = 0"
    assert set_parameters(source, {"EPOCHS": 1}) == (
        "EPOCHS = 1  # set by the autograder (was 10)\nBATCH_SIZE = 64\nSEED = 0"
    )


def test_build_writes_config_and_notebook_only(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbcourse.build(tmp_path, {LESSON: nb})
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["nbgrader_config.py", f"source/{LESSON}/{LESSON}.ipynb"]
    from nbgrader.preprocessors import ClearHiddenTests
    from traitlets.config.loader import PyFileConfigLoader

    from autograder.frontends.nbgrader.preprocessors import ExecuteWithGrader, RestoreCells, SetParameters

    c = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert c.Execute.timeout > 30  # nbgrader's default would cut training cells short
    from autograder.authoring.course import CODE_STUB
    from autograder.frontends.nbgrader.preprocessors import GradeTestCells

    assert c.Autograde.autograde_preprocessors[:3] == [SetParameters, ExecuteWithGrader,
                                                       GradeTestCells]
    assert c.ClearSolutions.code_stub == CODE_STUB  # the release is the lesson
    assert RestoreCells in c.Autograde.sanitize_preprocessors and c.OverwriteCells.add_missing_cells
    assert ClearHiddenTests in c.GenerateFeedback.preprocessors
    # students' kernels run jailed, and nothing runs unjailed unless the instructor says so
    from autograder.frontends.nbgrader.kernel import JailedKernelManager

    assert ExecuteWithGrader().kernel_manager_class is JailedKernelManager
    assert c.JailedKernelManager.allow_unjailed is False is c.GradeTestCells.allow_unjailed


def test_build_refuses_a_stray_file_in_source(tmp_path):
    nb = nbformat.v4.new_notebook()
    (tmp_path / "source" / LESSON).mkdir(parents=True)
    (tmp_path / "source" / LESSON / f"{LESSON}.py").write_text("answers = 42\n")
    with pytest.raises(RuntimeError, match="released to students"):
        nbcourse.build(tmp_path, {LESSON: nb})


def test_build_and_grade_have_their_own_help(capsys):
    for command in ("build", "grade"):
        with pytest.raises(SystemExit) as done:
            nbcourse.main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.split()[:5] == ["usage:", "python", "-m", "autograder.frontends.nbgrader.course",
                                   command]
        assert ("--assignment" in out) == (command == "grade")


def test_test_cells_run_their_import_but_not_their_check():
    source = ('### BEGIN HIDDEN TESTS\nfrom autograder.lessons.mnist_dnn import check\n\ncheck("hidden")'
              "\n###")
    assert without_check_calls(source) == (
        "### BEGIN HIDDEN TESTS\nfrom autograder.lessons.mnist_dnn import check\n\n###")


def test_test_cells_run_in_the_kernel_without_their_check_call(tmp_path):
    from autograder.frontends.nbgrader.preprocessors import ExecuteWithGrader

    test_cell = nbformat.v4.new_code_cell('import math\ncheck("model")')
    test_cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "check_model",
                                      "points": 8}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def check(g): 1 / 0"),
                                         test_cell, nbformat.v4.new_code_cell("math.pi")])
    nb, _ = ExecuteWithGrader(timeout=60).preprocess(
        nb, {"metadata": {"path": str(tmp_path), "name": LESSON}})
    assert nb.cells[1].source == 'import math\ncheck("model")'  # the cell itself is unchanged
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count == 2  # no ZeroDivisionError
    assert nb.cells[2].outputs[0].data["text/plain"].startswith("3.14")  # its import ran


def test_test_cell_outputs_are_the_graders_whatever_the_kernel_wrote(tmp_path, monkeypatch):
    """Whatever the kernel left in a test cell (nothing, a fake 8.0, stderr) is replaced."""
    failing = {"batch_independence", "min_test_accuracy"}
    results = [CheckResult(check, check.id not in failing, f"secret details of {check.id}")
               for check in L01.checks]
    graded = []

    def fake_grade(path, lesson, limits):
        graded.append((os.path.basename(path), open(path).read(), lesson))
        return autograder.engine.grading.Report(lesson, str(path), results)

    monkeypatch.setattr(autograder.engine.grading, "grade", fake_grade)
    new = nbformat.v4
    cells = [new.new_code_cell("x = 1"), new.new_code_cell('check("model")'),
             new.new_code_cell('### BEGIN HIDDEN TESTS\ncheck("hidden")\n### END HIDDEN TESTS')]
    for cell, (grade_id, points) in zip(cells[1:], [("check_model", 8), ("check_hidden", 5)]):
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                     "grade_id": grade_id, "points": points}
    cells[1].outputs = [new.new_output("execute_result", data={"text/plain": "8.0"}),
                        new.new_output("stream", name="stderr", text="oops")]
    nb = new.new_notebook(cells=cells)
    kept = "the notebook as it was before the kernel ran"  # ExecuteWithGrader keeps it
    resources = {"metadata": {"path": str(tmp_path), "name": LESSON}, GRADED: kept}
    nb, _ = GradeTestCells().preprocess(nb, resources)
    assert graded == [(f"{LESSON}.ipynb", kept, LESSON)]  # once, the kept copy
    assert cells[0].outputs == []
    model, hidden = cells[1].outputs, cells[2].outputs
    assert [o.output_type for o in model] == ["stream", "execute_result"] == [
        o.output_type for o in hidden]
    assert model[0].name == "stdout" and model[1].data["text/plain"] == "6.0"
    assert "✗ batch_independence [0/2]" in model[0].text and "model: 6/8 points" in model[0].text
    assert hidden[1].data["text/plain"] == "0.0"
    assert "✗ min_test_accuracy (hidden) [0/5]" in hidden[0].text
    assert "secret details" not in hidden[0].text  # hidden checks: student-facing text only

    from nbgrader.utils import determine_grade
    assert [determine_grade(cell)[0] for cell in cells[1:]] == [6.0, 0.0]


# --- the class ----------------------------------------------------------------------------------


def grade_cells(nb):
    """grade_id -> the check group its test cell calls, in notebook order."""
    cells = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            groups = CHECK_CALL.findall(cell.source)
            assert len(groups) == 1, f"test cell {meta['grade_id']} should call check() once"
            cells[meta["grade_id"]] = groups[0]
    return cells


def strip_markers(source):
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    return "\n".join(line for line in source.split("\n") if not any(m in line for m in markers))


def definitions(source):
    """name -> source of each top-level class and function."""
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def filled(release, annotated, answers=None):
    """The release notebook with its gaps filled: each gap cell is the solution's, with the
    classes and functions of `answers` (a submission's source) in place of the solution's."""
    nb = nbformat.from_dict(release)
    for cell, solution in zip(nb.cells, annotated.cells, strict=True):
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        code = strip_markers(solution.source)
        lines = code.split("\n")
        theirs = definitions(answers) if answers else {}
        for node in reversed(ast.parse(code).body):
            if getattr(node, "name", None) in theirs:
                lines[node.lineno - 1:node.end_lineno] = theirs[node.name].split("\n")
        cell.source = "\n".join(lines)
    return nb


# A cell a student adds: copy the instructor's source notebook (answers, hidden test) over the
# file that autograde grades (before the jail: 25/25 with every gap unfilled).
SWAP = ("import shutil\ntry:\n    shutil.copy('../../../source/{lesson}/{lesson}.ipynb', "
        "'{lesson}.ipynb')\nexcept OSError as error:\n    print(error)\n")
# A cell that starts a process outliving autograde, which then gives itself full marks in the
# gradebook (before the jail: autograde said 0/25, export 25/25).
LINGER = ("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', \"\"\"\n"
          "import sqlite3, time  # lingerer-marker\ntime.sleep(8)\n"
          "db = sqlite3.connect({db!r})\n"
          "db.execute('update grade set manual_score = (select max_score from grade_cells "
          "where grade_cells.id = grade.cell_id)')\ndb.commit()\n\"\"\"], "
          "start_new_session=True)\n")


def make_class(release, annotated, root):
    """student id -> submitted notebook."""
    students = {"reference": filled(release, annotated), "unfilled": nbformat.from_dict(release)}
    for student, variant in BUGGY.items():
        students[student] = filled(release, annotated, render(variant))
    tampered = filled(release, annotated)
    for cell in tampered.cells:  # claim the model's points; delete the hidden test
        cell.source = cell.source.replace('check("model")', "8.0")
    tampered.cells = [c for c in tampered.cells if "HIDDEN TESTS" not in c.source]
    students["tampered"] = tampered
    cheat = nbformat.from_dict(release)
    for cell in cheat.cells:
        if cell.cell_type == "code" and "class MyModel" in cell.source:
            cell.source = CHEAT
    students["cheat"] = cheat
    swapper = nbformat.from_dict(release)
    swapper.cells.append(nbformat.v4.new_code_cell(SWAP.format(lesson=LESSON)))
    students["swapper"] = swapper
    lingerer = nbformat.from_dict(release)
    lingerer.cells.insert(3, nbformat.v4.new_code_cell(
        LINGER.format(db=str(root / "gradebook.db"))))
    students["lingerer"] = lingerer
    duplicated = filled(release, annotated)  # a test cell copy-pasted, nbgrader metadata and all
    test_cell = next(c for c in duplicated.cells if 'check("model")' in c.source)
    pasted = copy.deepcopy(test_cell)
    pasted.id = "pasted-copy"  # Jupyter gives a pasted cell a new id, not new metadata
    duplicated.cells.insert(duplicated.cells.index(test_cell) + 1, pasted)
    students["duplicated"] = duplicated
    fakemeta = filled(release, annotated)  # a cell with made-up nbgrader metadata
    fake = nbformat.v4.new_code_cell("print('extra points?')")
    fake.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": False,
                                 "grade_id": "bonus", "points": 100, "schema_version": 3}
    fakemeta.cells.append(fake)
    students["fakemeta"] = fakemeta
    return students


def released_course(root, lesson=LESSON):
    """A course of `lesson` alone, built and released: (its annotated notebook, the release)."""
    from autograder.authoring.course import annotated_notebook

    annotated = annotated_notebook(lesson)
    nbcourse.build(root, {lesson: annotated})
    nbcourse.nbgrader("generate_assignment", lesson, course_dir=root, timeout=300)
    return annotated, nbformat.read(root / "release" / lesson / f"{lesson}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Build, release, collect, autograde, feedback, export; then the CLI on the same files."""
    root = tmp_path_factory.mktemp("course")
    annotated, release = released_course(root)

    # the class hands in through an LMS: one zip of files named the Canvas way
    students = make_class(release, annotated, root)
    source = root / "source" / LESSON / f"{LESSON}.ipynb"
    source_bytes = source.read_bytes()
    archive = root / "downloaded" / LESSON / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        for i, (student, nb) in enumerate(students.items()):
            zf.writestr(f"{student}_{100 + i}_{5000 + i}_{LESSON}.ipynb", nbformat.writes(nb))
    # the course keys Canvas' students by user id (test_nbgrader_instructor.py); this class is
    # keyed by the sortable name, with the instructor's own regular expression (as for Moodle in
    # the README), so that the tests below can name each student
    nbcourse.nbgrader("zip_collect", LESSON, f"--FileNameCollectorPlugin.named_regexp={BY_NAME}",
                      course_dir=root, timeout=120)

    start = time.perf_counter()
    nbcourse.nbgrader("autograde", LESSON, course_dir=root, timeout=1500)
    autograde_s = time.perf_counter() - start
    time.sleep(10)  # a lingering process would have written the gradebook by now
    nbcourse.nbgrader("generate_feedback", LESSON, course_dir=root, timeout=300)
    nbcourse.nbgrader("export", "--to", "grades.csv", course_dir=root, timeout=120)
    lingering = [pid for pid in os.listdir("/proc")
                 if pid.isdigit() and b"lingerer-marker" in _cmdline(pid)]
    print(f"\nnbgrader autograde: {autograde_s:.1f} s for {len(students)} students")

    cli = {}
    for student in students:
        notebook = root / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        out = root / f"{student}.json"
        command = [sys.executable, "-m", "autograder", "grade", str(notebook), "--json", str(out)]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        cli[student] = json.loads(out.read_text())
    return {"root": root, "students": students, "release": release, "annotated": annotated,
            "cli": cli, "source_unchanged": source.read_bytes() == source_bytes,
            "lingering": lingering}


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def autograded(course, student):
    path = course["root"] / "autograded" / student / LESSON / f"{LESSON}.ipynb"
    return nbformat.read(path, as_version=4)


def nbgrader_grades(root, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(LESSON, LESSON, student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}


def cli_group_points(report, group):
    """(points, max points, all passed) of the CLI report's checks in one group."""

    ids = {check.id for check in L01.select(group)}
    checks = [c for c in report["checks"] if c["id"] in ids]
    assert checks, f"no check of group {group!r} in the CLI report"
    return (sum(c["score"] for c in checks), sum(c["max_score"] for c in checks),
            all(c["passed"] for c in checks))


# --- what generate_assignment releases ----------------------------------------------------------


def test_release_matches_the_lesson(course):
    lesson = nbformat.read(REPO / "lessons" / f"{LESSON}.ipynb", as_version=4)
    cells = lesson.cells[1:] if "generated" in lesson.cells[0].source.lower() else lesson.cells
    release = course["release"].cells
    assert [c.cell_type for c in release] == [c.cell_type for c in cells]
    for i, (ours, theirs) in enumerate(zip(release, cells)):
        assert ours.source == theirs.source, f"cell {i} differs between release and lesson"


def test_no_answers_are_released(course):
    released = [p.name for p in (course["root"] / "release" / LESSON).iterdir()]
    assert released == [f"{LESSON}.ipynb"]
    text = (course["root"] / "release" / LESSON / f"{LESSON}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


# --- autograde ------------------------------------------------------------------------------------


def test_each_test_cell_scores_what_the_cli_grader_gives(course):
    cells = grade_cells(course["annotated"])
    assert set(cells.values()) >= {"model", "fit", "accuracy", "hidden"}
    for student, report in course["cli"].items():
        grades = nbgrader_grades(course["root"], student)
        for grade_id, group in cells.items():
            points, max_points, passed = cli_group_points(report, group)
            score, max_score = grades[grade_id]
            assert score == pytest.approx(points), (student, group)
            assert max_score == pytest.approx(max_points), (student, group)
            assert (score == max_score) == passed, (student, group)


def test_each_check_line_in_the_test_cells_agrees_with_the_cli_grader(course):
    for student, report in course["cli"].items():
        printed = {}
        for cell in autograded(course, student).cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                text = "".join(o.text for o in cell.outputs if o.output_type == "stream")
                for mark, check_id, score, max_score in CHECK_LINE.findall(text):
                    printed[check_id] = (mark == "✓", float(score), float(max_score))
        expected = {c["id"]: (c["passed"], c["score"], c["max_score"]) for c in report["checks"]}
        assert printed == expected, student


def test_reference_gets_full_marks_and_its_test_cells_write_no_stderr(course):
    grades = nbgrader_grades(course["root"], "reference")
    assert all(score == max_score for score, max_score in grades.values()), grades
    for cell in autograded(course, "reference").cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            streams = [o.name for o in cell.outputs if o.output_type == "stream"]
            assert "stderr" not in streams and all(o.output_type != "error" for o in cell.outputs)


def test_unfilled_lesson_and_buggy_submissions_lose_points(course):
    for student in ["unfilled", *BUGGY]:
        grades = nbgrader_grades(course["root"], student)
        assert sum(s for s, _ in grades.values()) < sum(m for _, m in grades.values()), student


def test_replacing_check_in_the_kernel_gains_nothing(course):
    grades = nbgrader_grades(course["root"], "cheat")
    total, most = sum(s for s, _ in grades.values()), sum(m for _, m in grades.values())
    assert total == pytest.approx(course["cli"]["cheat"]["score"]) and total < most / 2, grades


def test_test_cell_outputs_come_from_the_grader_not_the_kernel(course):
    for student in course["students"]:
        for cell in autograded(course, student).cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
                assert kinds == [("stream", "stdout"), ("execute_result", None)], (student, kinds)


def test_tampered_test_cells_are_graded_by_the_originals(course):
    root = course["root"]
    assert nbgrader_grades(root, "tampered") == nbgrader_grades(root, "reference")
    restored = grade_cells(autograded(course, "tampered"))
    assert set(restored.values()) == set(grade_cells(course["annotated"]).values())


def test_grading_runs_the_short_parameters(course):
    cells = autograded(course, "reference").cells
    params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    assert "EPOCHS = 1  # set by the autograder" in params.source


# --- feedback and export ------------------------------------------------------------------------


def test_export_has_one_row_per_student_with_its_total(course):
    with open(course["root"] / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(course["students"])
    for student, report in course["cli"].items():
        assert float(rows[student]["score"]) == pytest.approx(report["score"]), student
        assert float(rows[student]["max_score"]) == pytest.approx(report["max_score"]), student


def test_feedback_shows_scores_but_no_hidden_test_code(course):
    for student in course["students"]:
        graded = nbformat.writes(autograded(course, student))
        assert "BEGIN HIDDEN TESTS" in graded, student  # it ran, so there was something to leak
        html = (course["root"] / "feedback" / student / LESSON / f"{LESSON}.html").read_text()
        assert "Score:" in html, student
        for secret in ("HIDDEN TESTS", "&quot;hidden&quot;", '"hidden"', "'hidden'"):
            assert secret not in html, (student, secret)


# --- students who attack the course from their kernel --------------------------------------------


def test_the_kernel_cannot_swap_the_graded_file_or_touch_the_course(course):
    """The swapper copied source/ over its own file: it scores its unfilled gaps."""
    grades = nbgrader_grades(course["root"], "swapper")
    assert sum(s for s, _ in grades.values()) == pytest.approx(course["cli"]["unfilled"]["score"])
    assert course["source_unchanged"]
    for student, nb in course["students"].items():  # nobody's submitted file changed
        submitted = course["root"] / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        assert nbformat.read(submitted, as_version=4).cells == nb.cells, student


def test_nothing_started_by_a_kernel_outlives_it(course):
    assert course["lingering"] == []
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(LESSON, LESSON, "lingerer")
        assert all(g.manual_score is None for g in nb.grades)
        assert nb.score == pytest.approx(course["cli"]["unfilled"]["score"])


def test_a_copied_test_cell_or_made_up_metadata_is_graded_like_the_reference(course):
    reference = nbgrader_grades(course["root"], "reference")
    for student in ("duplicated", "fakemeta"):
        assert nbgrader_grades(course["root"], student) == reference, student


def test_a_broken_notebook_fails_its_student_alone(tmp_path):
    """Invalid JSON and a 100k-cell notebook: those students get a feedback page saying why,
    the rest of the class is autograded, given feedback and exported; exit 1 names them."""
    from autograder.authoring.course import annotated_notebook

    nbcourse.build(tmp_path, {LESSON: annotated_notebook(LESSON)})
    nbcourse.nbgrader("generate_assignment", LESSON, course_dir=tmp_path, timeout=120)
    release = (tmp_path / "release" / LESSON / f"{LESSON}.ipynb").read_text()
    cell = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
            "execution_count": None}
    for student, text in {"unfilled": release, "garbled": release[:len(release) // 2],
                          "huge": json.dumps({"cells": [cell] * 100_000, "metadata": {},
                                              "nbformat": 4, "nbformat_minor": 5})}.items():
        folder = tmp_path / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        (folder / f"{LESSON}.ipynb").write_text(text)
    done = subprocess.run([sys.executable, "-m", "autograder.frontends.nbgrader.course", "grade",
                           "--assignment", LESSON, "--course-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "autograded 1 of 3 students" in done.stdout  # not "3 of 3"
    assert "2 could not be graded, the notebook handed in" in done.stdout, done.stdout
    assert "  garbled: could not grade: " in done.stdout
    assert "  huge: could not grade: the notebook has 100000 cells" in done.stdout
    assert "unfilled:" not in done.stdout
    with open(tmp_path / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(rows["unfilled"]["max_score"]) == 25
    for student in ("unfilled", "garbled", "huge"):
        page = tmp_path / "feedback" / student / LESSON / f"{LESSON}.html"
        assert page.exists(), student
        assert ("could not be graded" in page.read_text()) == (student != "unfilled")
