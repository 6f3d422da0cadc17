"""Three nbgrader preprocessors that make `nbgrader autograde` fit a deep-learning lesson.

The course's nbgrader_config.py (written by `python -m autograder.nbcourse build`) puts them
in the two steps of autograde:

    sanitize   RestoreCells        nbgrader's OverwriteCells; also puts deleted test cells back
    run        SetParameters       shorten the run: rewrite values in the `parameters` cell
               ExecuteWithGrader   nbgrader's Execute, with AUTOGRADER_SUBMISSION naming the
                                   notebook, so each check("<group>") test cell grades that file
"""
import ast
import os

from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Dict


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
    """nbgrader's Execute, with AUTOGRADER_SUBMISSION set to the notebook being run.

    The kernel inherits the environment, so `autograder.selfcheck.check` grades the file
    nbgrader is autograding (autograded/<student>/<assignment>/<notebook>.ipynb, test cells
    already restored) exactly as `python -m autograder grade` does. The student's figures go
    next to it (MNIST_RUN_DIR) rather than into the instructor's runs/.
    """

    def preprocess(self, nb, resources, km=None):
        folder = os.path.abspath(resources["metadata"]["path"])
        notebook = os.path.join(folder, resources["metadata"]["name"] + ".ipynb")
        runs = os.path.join(folder, "runs")
        with utils.setenv(AUTOGRADER_SUBMISSION=notebook, MNIST_RUN_DIR=runs):
            return super().preprocess(nb, resources, km=km)
