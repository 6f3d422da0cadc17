"""The nbgrader preprocessors that make `nbgrader autograde` fit a deep-learning lesson.

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
               SanitizeOutputs     the student's HTML, JavaScript and SVG are shown as text
    feedback   SanitizeOutputs     again, for notebooks autograded before it existed

A student's notebook can write anything into its outputs and its own Markdown cells, and
nbgrader's feedback page (and formgrader) would render it as HTML: a script, a fixed "Score: 25 /
25" banner over the real one. SanitizeOutputs keeps only plain text and images of the kernel's
outputs, and renders the student's own Markdown with a short list of harmless tags.

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

import bleach
import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (ClearHiddenTests, Execute, NbGraderPreprocessor,
                                    OverwriteCells)
from traitlets import Bool, Dict, Float, Integer

from autograder.engine import leftovers
from autograder.engine.sandbox import Limits
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
    folder = str(leftovers.private_dir("graded"))  # swept if nbgrader is killed
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
        from autograder.engine.submission import MAX_CELLS, SubmissionError

        if len(nb.cells) > MAX_CELLS:  # nbgrader would run every one of them, for minutes
            raise SubmissionError(f"the notebook has {len(nb.cells)} cells, more than the "
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

    def report_change(self, name, attr, old, new):
        """nbgrader's warning, except for the one change every student makes: the released test
        cell lacks its hidden tests, so its checksum differs from the source's ("Attribute
        'checksum' for cell check_hidden has changed!" for the whole class, a known nbgrader
        false positive). The cell is restored from the source either way."""
        if attr == "checksum" and self._as_released(name, self._cell.source):
            self.log.debug("Cell %s is as released (its hidden tests removed): restored", name)
            return
        super().report_change(name, attr, old, new)

    def _as_released(self, grade_id, theirs: str) -> bool:
        """Whether `theirs` is the source of cell `grade_id` minus its hidden tests."""
        source = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
        released = nbformat.v4.new_code_cell(source.source)
        removed = ClearHiddenTests()._remove_hidden_test_region(released)
        return removed and theirs.strip() == released.source.strip()

    def preprocess_cell(self, cell, resources, index):
        self._cell = cell  # the cell report_change is about
        return super().preprocess_cell(cell, resources, index)

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

    # nbgrader raises when a cell's output is still arriving 4 s (iopub_timeout) after the
    # kernel said the cell was done: a cell that prints 300 MB failed the whole notebook, which
    # the gradebook then held as 0 points, or not, depending on how fast nbgrader read it. What
    # a cell prints never changes a grade here (GradeTestCells grades the file), so the rest
    # of a late output is dropped instead, with nbclient's warning in the log.
    raise_on_iopub_timeout = Bool(False, help="Fail the notebook when a cell's output is still "
                                              "arriving iopub_timeout s after it ended").tag(
        config=True)
    max_output_bytes = Integer(1 << 20, help="Output kept per cell; the rest is left out, with "
                                             "a line that says so").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", JailedKernelManager)  # nbgrader's sets its own
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources, km=None):
        resources[GRADED] = nbformat.writes(nb)
        self._output_bytes = {}  # cell index -> bytes of output it sent
        runs = os.path.join(os.path.dirname(notebook_path(resources)), "runs")
        with utils.setenv(MNIST_RUN_DIR=runs):  # without a jail (allow_unjailed)
            return super().preprocess(nb, resources, km=km)

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's, until the cell has sent `max_output_bytes`: nbgrader's memory and the
        autograded notebook stay small however much a cell prints."""
        before = self._output_bytes.get(cell_index, 0)
        after = self._output_bytes[cell_index] = before + output_bytes(msg["content"])
        if after <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if before <= self.max_output_bytes:  # the first output left out: say so, once
            outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                f"\n[the autograder left out the rest of this cell's output: over "
                f"{self.max_output_bytes >> 20} MB]\n")))
        return None

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


def output_bytes(content: dict) -> int:
    """About how many bytes an output message carries (its text, or each of its data)."""
    data = content.get("data") if isinstance(content.get("data"), dict) else {}
    return len(str(content.get("text", ""))) + sum(len(str(value)) for value in data.values())


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
    time_limit = Float(Limits.time_s, help="Seconds per probe, as `python -m autograder grade "
                                           "--time-limit`").tag(config=True)
    memory_limit = Integer(Limits.memory_mb, help="MB of memory for the student's jail, as "
                                                  "--memory-limit").tag(config=True)
    budget = Float(Limits.budget_s, help="Seconds for one submission, as --budget").tag(
        config=True)

    def preprocess(self, nb, resources):
        cells = [(cell, check_group(cell)) for cell in nb.cells]
        cells = [(cell, group) for cell, group in cells if group is not None]
        if not cells:
            return nb, resources
        from autograder.engine import jail
        from autograder.engine.grading import grade

        jail.require(untrusted_ok=self.allow_unjailed)
        path = notebook_path(resources)
        limits = Limits(time_s=self.time_limit, memory_mb=self.memory_limit, budget_s=self.budget)
        # Raises, as the CLI: a notebook the grader cannot grade (SubmissionError, UsageError)
        # or a grader that failed (GraderUnavailable: "not graded: ...") fails this student's
        # autograde, which writes no score; never a 0 in its test cells.
        with graded_copy(resources, path) as copy_path:  # as the lesson the notebook declares,
            report = grade(copy_path, assignment_lesson(resources), limits=limits)
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


# What the student may format in their own Markdown cells: text, lists, code, tables, links.
# No attribute but a link's address (no style, class or id: nothing positioned over the score,
# nothing that borrows the page's own look), no image, no script.
MARKDOWN_TAGS = ["a", "abbr", "b", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4",
                 "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "strong", "table", "tbody",
                 "td", "th", "thead", "tr", "ul"]
SAFE_OUTPUTS = ("text/plain", "image/png", "image/jpeg")  # shown as text, or as a data: image


class SanitizeOutputs(NbGraderPreprocessor):
    """What the student's notebook wrote is shown, never run: a code cell's outputs keep only
    plain text and PNG/JPEG images (HTML, JavaScript, SVG, Markdown outputs become their plain
    text), and a Markdown cell that is not the instructor's (not locked) is rendered here with
    MARKDOWN_TAGS only. nbgrader's feedback page and formgrader render what is left."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [plain_output(output) for output in cell.outputs]
        elif cell.cell_type in ("markdown", "raw") and not utils.is_locked(cell):
            cell.source = safe_markdown(cell.source)
            cell.pop("attachments", None)
        return cell, resources


def plain_output(output):
    """`output` with only SAFE_OUTPUTS; rich output with none of them becomes its text."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output  # stream and error outputs are shown as escaped text
    data = output.get("data", {})
    kept = {key: value for key, value in data.items() if key in SAFE_OUTPUTS}
    if "text/plain" not in kept:
        text = " ".join(bleach.clean(str(value), tags=[], strip=True).split()
                        for value in data.values() if isinstance(value, str))
        kept["text/plain"] = text or "[output not shown]"
    output["data"] = kept
    output["metadata"] = {}
    return output


def safe_markdown(source: str) -> str:
    """The student's Markdown as HTML with MARKDOWN_TAGS only, links to http(s) and mailto only
    (markdown passes the HTML through unchanged when the page renders it)."""
    from nbconvert.filters.markdown import markdown2html

    cleaned = bleach.clean(markdown2html(source), tags=MARKDOWN_TAGS,
                           attributes={"a": ["href"], "abbr": ["title"]},
                           protocols=["http", "https", "mailto"], strip=True)
    return f"<div>\n{cleaned}\n</div>"
