"""Four nbgrader preprocessors that make `nbgrader autograde` fit a deep-learning lesson.

The course's nbgrader_config.py (written by `python -m autograder.nbcourse build`) puts them
in the two steps of autograde:

    sanitize   RestoreCells        nbgrader's OverwriteCells; also puts deleted test cells back
    run        SetParameters       shorten the run: rewrite values in the `parameters` cell
               ExecuteWithGrader   nbgrader's Execute, minus the check("<group>") calls of the
                                   test cells (their imports still run)
               GradeTestCells      grades the notebook file in nbgrader's own process and
                                   writes every check test cell's output: ✓/✗ lines, points

The points never come from the student's kernel: a test cell without an error or a number
scores full marks in nbgrader, and a kernel can be made to print nothing (a student only has to
replace `check`). GradeTestCells runs after the kernel is done and overwrites whatever the
kernel left in those cells.
"""
import ast
import copy
import os

import nbformat
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Dict

from autograder.checks import DEFAULT_LESSON, LESSONS, select
from autograder.course import CHECK_CALL
from autograder.report import group_card


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
    """nbgrader's Execute, except that the check("<group>") calls of the test cells don't run.

    GradeTestCells (next) grades the notebook file and overwrites those cells' outputs, so
    grading in the kernel too would only double the time. A test cell still runs the rest of
    its code (`from autograder.selfcheck import check`): a student's later cell may use it.
    AUTOGRADER_SUBMISSION names the notebook, so such a call by the student grades the file in
    the sandbox, as `python -m autograder grade` does. The student's figures go next to it
    (MNIST_RUN_DIR) rather than into the instructor's runs/.
    """

    def preprocess(self, nb, resources, km=None):
        notebook = notebook_path(resources)
        runs = os.path.join(os.path.dirname(notebook), "runs")
        with utils.setenv(AUTOGRADER_SUBMISSION=notebook, MNIST_RUN_DIR=runs):
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


class GradeTestCells(NbGraderPreprocessor):
    """Grade the notebook file here, in nbgrader's process, and write each test cell's output.

    Runs after ExecuteWithGrader. `autograder.grading.grade(<notebook file>)` is exactly what
    `python -m autograder grade` runs (sandbox, hidden checks); every test cell that calls
    check("<group>") gets, in place of anything the kernel wrote, the student-facing line of
    each check of the group and its total on stdout, then the group's points as the cell's
    result, which nbgrader takes as partial credit. A hidden check shows its verdict only.
    """

    def preprocess(self, nb, resources):
        cells = [(cell, check_group(cell)) for cell in nb.cells]
        cells = [(cell, group) for cell, group in cells if group is not None]
        if not cells:
            return nb, resources
        from autograder.grading import grade

        path = notebook_path(resources)
        name = resources["metadata"]["name"]
        lesson = name if name in LESSONS else DEFAULT_LESSON
        report = grade(path, lesson)
        self.log.info("Autograder: %g/%g points for %s (%.1f s)", report.score, report.max_score,
                      path, report.seconds)
        by_id = {result.check.id: result for result in report.results}
        for cell, group in cells:
            results = [by_id[check.id] for check in select(lesson, group)]
            score = sum(result.score for result in results)
            most = sum(result.max_score for result in results)
            points = float(cell.metadata["nbgrader"].get("points") or 0)
            if most != points:
                self.log.warning("Test cell %s is worth %g points, its checks %g: rebuild the "
                                 "course (python -m autograder.nbcourse build)",
                                 cell.metadata["nbgrader"]["grade_id"], points, most)
            lines = group_card(group, results)
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n"),
                nbformat.v4.new_output("execute_result", data={"text/plain": repr(float(score))},
                                       execution_count=cell.execution_count),
            ]
        return nb, resources
