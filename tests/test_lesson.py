"""Lessons are generated from the solutions: no drift, pairs in sync, their gaps, and every
lesson runs up to its first gap and stops there."""
import os
import shutil

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.authoring import course
from autograder import lessons

LESSON = "01_mnist_dnn"  # the marker tests' lesson
LESSONS = lessons.ids()
PAIRS = [pair for lesson in LESSONS for pair in (
    (course.solution_path(lesson), course.solution_path(lesson, ".ipynb")),
    (course.lesson_path(lesson, ".py"), course.lesson_path(lesson, ".ipynb")))]
# what each lesson's student notebook must not give away: its answers and its hidden check
ANSWERS = {"01_mnist_dnn": ("nn.Linear(28 * 28", "loss_fn(model(x), y)", "correct += "),
           "02_mnist_cnn": ("nn.Conv2d(1, 16", "(size + 2 * padding - kernel_size)",
                            "self.pool(self.conv1(x))")}


def read(path):
    return jupytext.read(path)


def test_regeneration_changes_nothing():
    stale = [str(path.relative_to(course.REPO)) for path in course.build_lessons(check=True)]
    assert not stale, f"{stale} differ from what `make lessons` generates"
    assert course.main(["lessons", "--check"]) == 0


@pytest.mark.parametrize("py, ipynb", PAIRS, ids=lambda p: p.name)
def test_each_pair_holds_the_same_cells(py, ipynb):
    def cells(path):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in read(path).cells]

    assert cells(py) == cells(ipynb)


@pytest.mark.parametrize("LESSON", LESSONS)
def test_generated_files_say_so_where_maintainers_look_not_in_the_first_cell(LESSON):
    py_text = course.lesson_path(LESSON, ".py").read_text()
    assert py_text.startswith(f"# ---\n# jupyter:\n#   autograder:\n#     lesson: {LESSON}\n"
                              f"#   generated:\n#     by: make lessons\n"
                              f"#     from: solutions/{LESSON}.py\n")
    nb = read(course.lesson_path(LESSON, ".ipynb"))
    assert nb.metadata["generated"] == course.generated_note(LESSON)
    assert nb.metadata["autograder"] == {"lesson": LESSON}  # how the grader tells the lesson
    first = nb.cells[0]  # the notebook opens with words for the student
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# Lesson {LESSON[:2]} — {lessons.get(LESSON).title}")
    assert "do not edit" not in first.source.lower() and "generated" not in first.source.lower()


@pytest.mark.parametrize("LESSON", LESSONS)
def test_a_students_copy_is_not_paired_and_has_the_same_cells(LESSON):
    lesson = nbformat.read(course.lesson_path(LESSON, ".ipynb"), as_version=4)
    copy = course.student_copy(lesson)
    assert "jupytext" not in copy.metadata and "generated" not in copy.metadata
    assert "jupytext" in lesson.metadata  # the lesson itself is left alone
    assert [c.source for c in copy.cells] == [c.source for c in lesson.cells]


def nbgrader_cells(nb, key):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get(key)}


@pytest.mark.parametrize("LESSON", LESSONS)
def test_the_gaps_have_their_hints_and_no_answers(LESSON):
    nb = read(course.lesson_path(LESSON, ".ipynb"))
    gaps = nbgrader_cells(nb, "solution")
    assert sorted(gaps) == [f"gap{n}" for n in sorted(set(lessons.get(LESSON).gaps.values()))]
    for grade_id, cell in gaps.items():
        assert f"# TODO (gap {grade_id[-1]}):" in cell.source
        stub, lines = course.CODE_STUB["python"].split("\n"), cell.source.split("\n")
        assert any([line.strip() for line in lines[i:i + len(stub)]] == stub
                   for i in range(len(lines))), cell.source
    text = course.lesson_path(LESSON, ".ipynb").read_text()
    for answer in ("SOLUTION", "HIDDEN TESTS", 'check("hidden")', *ANSWERS[LESSON]):
        assert answer not in text


@pytest.mark.parametrize("LESSON", LESSONS)
def test_check_cells_carry_the_catalogue_points(LESSON):
    nb = course.annotated_notebook(LESSON)
    grades = nbgrader_cells(nb, "grade")
    record = lessons.get(LESSON)
    assert sorted(grades) == sorted(f"check_{group}" for group in record.groups)
    assert sum(c.metadata["nbgrader"]["points"] for c in grades.values()) == record.max_score
    for grade_id, cell in grades.items():
        group = grade_id.removeprefix("check_")
        assert cell.metadata["nbgrader"]["points"] == record.group_points(group)
        assert course.check_import(LESSON) in cell.source
        assert f'check("{group}")' in cell.source
    for cell in nb.cells:  # the parameters cell stays plain and editable; every other cell
        if "parameters" in cell.metadata.get("tags", ()):  # is a gap (editable) or locked
            assert "nbgrader" not in cell.metadata
            continue
        meta = cell.metadata["nbgrader"]
        assert meta["grade"] or meta["locked"] != meta["solution"]


def fixture_notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in ("import torch", *sources)]
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:02d}"
    return nb


HINT = "def f():\n    # TODO (gap 1): return 1\n"
GOOD = HINT + "    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"


@pytest.mark.parametrize("source, problem", [
    (HINT + "    ### BEGIN SOLUTION\n    return 1", "never closed"),
    ("def f():\n    return 1\n    ### END SOLUTION", "without a matching"),
    (GOOD.replace("    return 1\n", "    ### BEGIN SOLUTION\n"), "inside"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "no '# TODO (gap N)"),
    ("x = 1\n### BEGIN HIDDEN TESTS\nx = 2\n### END HIDDEN TESTS", "check cell"),
    ('from autograder.lessons.mnist_dnn import check\nx = 1\ncheck("model")', "nothing else"),
])
def test_malformed_markers_name_the_cell(source, problem):
    with pytest.raises(course.MarkerError) as error:
        course.annotate(fixture_notebook("x = 0", source), LESSON)
    message = str(error.value)
    assert message.startswith(f"cell 2 ({source.splitlines()[0]!r})")
    assert problem in message


def test_well_formed_fixture_is_annotated():
    nb = fixture_notebook(GOOD, 'from autograder.lessons.mnist_dnn import check\n\ncheck("fit")')
    course.annotate(nb, LESSON)
    kinds = [(c.metadata.nbgrader["grade_id"], c.metadata.nbgrader["locked"]) for c in nb.cells]
    assert kinds == [("cell-00", True), ("gap1", False), ("check_fit", True)]


def test_edits_only_in_the_solution_notebook_are_not_overwritten(tmp_path, monkeypatch):
    (tmp_path / "solutions").mkdir()
    py = tmp_path / "solutions" / f"{LESSON}.py"
    shutil.copy(course.solution_path(LESSON), py)
    nb = read(py)
    nb.cells[1].source += "\nAn edit made in Jupyter without jupytext."
    ipynb = py.with_suffix(".ipynb")
    jupytext.write(nb, ipynb)
    os.utime(py, (1, 1))  # the .ipynb is newer
    monkeypatch.setattr(course, "REPO", tmp_path)
    with pytest.raises(SystemExit, match="jupytext --sync"):
        course.build_lessons()


@pytest.mark.parametrize("LESSON", LESSONS)
def test_lesson_runs_until_its_first_gap(tmp_path, monkeypatch, LESSON):
    monkeypatch.setenv("MNIST_RUN_DIR", str(tmp_path))
    nb = nbformat.read(course.lesson_path(LESSON, ".ipynb"), as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(course.REPO)}})
    with pytest.raises(CellExecutionError) as error:
        client.execute()
    assert "NotImplementedError" in str(error.value)
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [c for c in code if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert [c.metadata["nbgrader"]["grade_id"] for c in failed] == ["gap1"]
    [raised] = [o for o in failed[0].outputs if o.output_type == "error"]
    assert (raised.ename, raised.evalue) == ("NotImplementedError",
                                             "gap not filled yet: see the TODO above")
    first_gap = code.index(failed[0])
    assert all(c.execution_count for c in code[:first_gap + 1])
    assert not any(c.execution_count for c in code[first_gap + 1:])


@pytest.mark.parametrize("LESSON", LESSONS)
def test_a_kernel_start_makes_no_run_folder(LESSON):
    """plots.run_dir() creates the run's folder: no cell may call it before the first figure
    is saved, or every kernel start leaves an empty runs/<date-time>/ behind."""
    sources = [c.source for c in read(course.lesson_path(LESSON, ".ipynb")).cells
               if c.cell_type == "code"]
    first_save = next(i for i, s in enumerate(sources) if "save_as=" in s)
    assert not [s for s in sources[:first_save] if "run_dir(" in s]
