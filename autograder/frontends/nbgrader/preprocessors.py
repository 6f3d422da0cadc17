"""Four nbgrader preprocessors that make `nbgrader autograde` fit a deep-learning lesson.

The course's nbgrader_config.py (written by `python -m autograder.frontends.nbgrader.course build`) puts them
in the two steps of autograde:

    sanitize   RestoreCells        nbgrader's OverwriteCells; also puts deleted test cells back
                                   and drops nbgrader metadata that is unknown or duplicated
    run        SetParameters       shorten the run: rewrite values in the `parameters` cell
               ExecuteWithGrader   nbgrader's Execute, in a jailed kernel (autograder.frontends.nbgrader.kernel),
                                   minus the check("<group>") calls of the test cells (their
                                   imports still run); keeps the notebook as it was before
               GradeTestCells      grades that copy in nbgrader's own process and writes every
                                   check test cell's output: ✓/✗ lines, points

The points never come from the student's kernel: a test cell without an error or a number
scores full marks in nbgrader, and a kernel can be made to print nothing (a student only has to
replace `check`). GradeTestCells runs after the kernel is done and overwrites whatever the
kernel left in those cells, and it grades the notebook as it was before the kernel ran, kept in
nbgrader's memory, never a file the kernel could have changed. The kernel itself runs jailed:
it sees its own folder, Python and MNIST, not `source/`, the gradebook or other students.
"""
import ast
import contextlib
import copy
import os
import shutil
import tempfile

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Dict

from autograder.frontends.nbgrader.kernel import JailedKernelManager

from autograder import lessons
from autograder.authoring.course import CHECK_CALL
from autograder.engine.report import group_card


GRADED = "autograder_graded_notebook"  # resources key: the notebook before the kernel ran


@contextlib.contextmanager
def graded_copy(resources, path):
    """A private file holding the notebook GradeTestCells grades: the copy ExecuteWithGrader
    kept before the kernel ran (else the file as it is now), in a folder of the grader's."""
    text = resources.get(GRADED)
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    folder = tempfile.mkdtemp(prefix="autograder-graded-")
    try:
        copy_path = os.path.join(folder, os.path.basename(path))
        with open(copy_path, "w", encoding="utf-8") as f:
            f.write(text)
        yield copy_path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def notebook_path(resources):
    """The file nbgrader is autograding: autograded/<student>/<assignment>/<notebook>.ipynb."""
    folder = os.path.abspath(resources["metadata"]["path"])
    return os.path.join(folder, resources["metadata"]["name"] + ".ipynb")


def check_group(cell):
    """The group of a test cell that calls `check("<group>")`, None for any other cell."""
    meta = cell.metadata.get("nbgrader", {})
    if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
        return None
    found = CHECK_CALL.search(cell.source)
    return found.group(1) if found else None


def without_check_calls(source):
    """`source` minus its `check("<group>")` lines (the import and the comments stay)."""
    lines = [line for line in source.split("\n") if not CHECK_CALL.fullmatch(line.strip())]
    return "\n".join(lines)


class RestoreCells(OverwriteCells):
    """OverwriteCells whose deleted test cells go back after the nearest earlier cell still there.

    OverwriteCells itself restores edited locked and test cells. With `add_missing_cells`,
    nbgrader 0.9.6 puts a deleted test cell back after the previous *grade or solution* cell
    only, and fails the whole submission (KeyError) when the cell before it is an ordinary
    locked one, e.g. the markdown above the hidden test.
    """

    def preprocess(self, nb, resources):
        """Drop nbgrader metadata that the source notebook does not have, or that a second cell
        repeats (a copied test cell): with it, nbgrader 0.9.6 fails the whole submission with
        `KeyError: 'grade_id'`. The cells stay, as ordinary cells; real test cells are then
        restored or put back as usual."""
        from autograder.engine.submission import MAX_CELLS

        if len(nb.cells) > MAX_CELLS:  # nbgrader would run every one of them, for minutes
            raise ValueError(f"the notebook has {len(nb.cells)} cells, more than the "
                             f"{MAX_CELLS} a notebook may have: it is not run")
        nbgrader = resources["nbgrader"]
        with Gradebook(nbgrader["db_url"]) as gradebook:
            source = gradebook.find_notebook(nbgrader["notebook"], nbgrader["assignment"])
            known = {cell.name for cell in source.source_cells}
        seen = set()
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
            if grade_id not in known or grade_id in seen:
                why = "repeats" if grade_id in seen else "has unknown"
                self.log.warning("Cell %d %s nbgrader metadata (grade_id %r): it is graded as an "
                                 "ordinary cell", index, why, grade_id)
                del cell.metadata["nbgrader"]
                continue
            seen.add(grade_id)
        return super().preprocess(nb, resources)

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_ids = [cell.name for cell in source_nb.source_cells]
        solution_ids = {cell.name for cell in source_nb.solution_cells}
        for grade_cell in source_nb.grade_cells:
            present = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
            if grade_cell.name in present:
                continue
            self.log.warning("Test cell %s was deleted: putting it back", grade_cell.name)
            index = source_ids.index(grade_cell.name)
            earlier = set(source_ids[:index])
            after = max((i + 1 for i, gid in enumerate(present) if gid in earlier), default=0)
            cell = self.missing_cell_transform(source_nb.source_cells[index], grade_cell.max_score,
                                               is_solution=grade_cell.name in solution_ids)
            nb.cells.insert(after, cell)
        return nb, resources


class SetParameters(NbGraderPreprocessor):
    """Rewrite `NAME = value` lines of the cell tagged `parameters` (papermill's convention).

    The points never depend on these values: the test cells grade the notebook *file* in the
    sandbox, with the grader's own budgets. Shortening only saves the time nbgrader spends
    re-running the student's own training cell.
    """

    values = Dict({"EPOCHS": 1}, help="Names of the parameters cell -> values to run with").tag(
        config=True)

    def preprocess(self, nb, resources):
        tagged = [cell for cell in nb.cells
                  if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])]
        if not tagged:
            self.log.warning("No cell tagged 'parameters': the notebook runs with its own values")
            return nb, resources
        try:
            tagged[0].source = set_parameters(tagged[0].source, self.values)
        except SyntaxError as error:
            self.log.warning("The parameters cell does not parse (%s): it runs unchanged", error)
        return nb, resources


def set_parameters(source, values):
    """`source` with each one-line top-level `NAME = ...`, NAME in `values`, given that value."""
    lines = source.split("\n")
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.lineno == node.end_lineno):
            name = node.targets[0].id
            if name in values:
                was = ast.get_source_segment(source, node.value)
                lines[node.lineno - 1] = (f"{name} = {values[name]!r}"
                                          f"  # set by the autograder (was {was})")
    return "\n".join(lines)


class ExecuteWithGrader(Execute):
    """nbgrader's Execute in a jailed kernel, except that the check("<group>") calls of the test
    cells don't run.

    GradeTestCells (next) grades the notebook and overwrites those cells' outputs, so grading in
    the kernel too would only double the time. A test cell still runs the rest of its code
    (`from autograder.lessons.mnist_dnn import check`): a student's later cell may use it. Before the
    kernel starts, the notebook as it is now goes into `resources` (GRADED): what GradeTestCells
    grades, whatever the kernel does to files. The kernel's figures go to its own /tmp.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", JailedKernelManager)  # nbgrader's sets its own
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources, km=None):
        resources[GRADED] = nbformat.writes(nb)
        runs = os.path.join(os.path.dirname(notebook_path(resources)), "runs")
        with utils.setenv(MNIST_RUN_DIR=runs):  # without a jail (allow_unjailed)
            return super().preprocess(nb, resources, km=km)

    def preprocess_cell(self, cell, resources, index):
        if check_group(cell) is None:
            return super().preprocess_cell(cell, resources, index)
        rest = copy.deepcopy(cell)
        rest.source = without_check_calls(cell.source)
        rest, resources = super().preprocess_cell(rest, resources, index)
        self.nb.cells[index] = cell  # nbclient put `rest` in its place
        cell.execution_count = rest.execution_count
        cell.outputs = []  # GradeTestCells writes them
        return cell, resources


def assignment_lesson(resources) -> str | None:
    """The lesson an nbgrader assignment is (its name is the lesson's id), else None: then the
    notebook's own declaration decides (autograder.lessons.detect)."""
    assignment = (resources.get("nbgrader") or {}).get("assignment")
    name = assignment or resources["metadata"]["name"]
    return name if name in lessons.ids() else None


class GradeTestCells(NbGraderPreprocessor):
    """Grade the notebook file here, in nbgrader's process, and write each test cell's output.

    Runs after ExecuteWithGrader. `autograder.engine.grading.grade(<notebook file>)` is exactly what
    `python -m autograder grade` runs (sandbox, hidden checks); every test cell that calls
    check("<group>") gets, in place of anything the kernel wrote, the student-facing line of
    each check of the group and its total on stdout, then the group's points as the cell's
    result, which nbgrader takes as partial credit. A hidden check shows its verdict only.
    """

    allow_unjailed = Bool(False, help="Grade where no jail can start (trusted submissions "
                                      "only)").tag(config=True)

    def preprocess(self, nb, resources):
        cells = [(cell, check_group(cell)) for cell in nb.cells]
        cells = [(cell, group) for cell, group in cells if group is not None]
        if not cells:
            return nb, resources
        from autograder.engine import jail
        from autograder.engine.grading import grade

        jail.require(untrusted_ok=self.allow_unjailed)
        path = notebook_path(resources)
        with graded_copy(resources, path) as copy_path:  # as the lesson the notebook declares,
            report = grade(copy_path, assignment_lesson(resources))  # which must be this one
        self.log.info("Autograder: %g/%g points for %s (%.1f s)", report.score, report.max_score,
                      path, report.seconds)
        by_id = {result.check.id: result for result in report.results}
        for cell, group in cells:
            results = [by_id[check.id] for check in lessons.get(report.lesson).select(group)]
            score = sum(result.score for result in results)
            most = sum(result.max_score for result in results)
            points = float(cell.metadata["nbgrader"].get("points") or 0)
            if most != points:
                self.log.warning("Test cell %s is worth %g points, its checks %g: rebuild the "
                                 "course (python -m autograder.frontends.nbgrader.course build)",
                                 cell.metadata["nbgrader"]["grade_id"], points, most)
            lines = group_card(group, results)
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n"),
                nbformat.v4.new_output("execute_result", data={"text/plain": repr(float(score))},
                                       execution_count=cell.execution_count),
            ]
        return nb, resources
