"""The student's JupyterLab session, as a student lives it, in a real browser.

`make student`'s set-up (autograder.frontends.student) on a temporary copy: JupyterLab on 127.0.0.1,
Debian's chromium driven by playwright. The student runs the notebook, types gap 1 in the
editor, runs its check cell (✓ lines), breaks it the way the original did (softmax over
dim 0: a ✗ line and its hint), fills gaps 2 and 3, then Kernel ▸ Restart Kernel and Run All
Cells: every figure is drawn, no cell fails. Screenshots go to runs/ci-screenshots/.

Needs /usr/bin/chromium (`make browser`, run by `make test`): without it the test fails, it
does not skip. `pytest -m "not browser"` leaves it out of a quick local run.
"""
import nbformat
import pytest
from student_lab import LESSON, LabServer, Notebook, launch, missing_browser, solution_cell

from autograder.authoring import course
from autograder.frontends import student
from autograder.frontends.nbgrader.preprocessors import set_parameters

pytestmark = pytest.mark.browser

GAP = {n: f"TODO (gap {n})" for n in (1, 2, 3)}
GREEN, RED = "rgb(26, 127, 55)", "rgb(207, 34, 46)"  # report.PASS_COLOR, FAIL_COLOR
FIGURES = ("one_digit", "some_digits", "history", "predictions", "errors", "confusion_matrix",
           "doubts")
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture
def work(tmp_path):
    """The student's copy, as `make student` makes it, trained for one epoch."""
    folder = tmp_path / "work"
    copy = student.prepare(folder)[0]  # lesson 01, which JupyterLab opens
    nb = nbformat.read(copy, as_version=4)
    [parameters] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = set_parameters(parameters.source, {"EPOCHS": 1})
    nbformat.write(nb, copy)
    return folder


@pytest.fixture
def notebook(work, tmp_path):
    problem = missing_browser()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with LabServer(work, tmp_path / "runs", tmp_path / "jupyterlab.log") as server, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            notebook = Notebook(browser.new_page(viewport={"width": 1400, "height": 1000}))
            notebook.open(server.url(f"/lab/tree/{LESSON}.ipynb"))
            yield notebook
            print("timings (s):", {k: round(v, 2) for k, v in notebook.timings.items()})
        finally:
            browser.close()


def test_a_student_fills_the_lesson_in_jupyterlab(notebook, work, tmp_path):
    page = notebook.page
    lessons_before = {p: p.read_bytes() for p in (course.REPO / "lessons").iterdir()}
    notebook.shot("1-opened")
    assert page.get_by_role("menuitem", name="Nbgrader").count() == 0  # instructor tools hidden
    first = page.locator(".jp-Notebook .jp-Cell").first
    first.locator(".jp-RenderedMarkdown h1").wait_for()  # the lesson's title, for the student
    assert first.inner_text().startswith("Lesson 01") and "do not edit" not in first.inner_text()

    # Run ▸ Run All Cells stops at gap 1, with the stub's message
    notebook.menu("Run", "Run All Cells")
    gap1 = notebook.cell(GAP[1])
    gap1.locator(".jp-OutputArea").filter(has_text="gap not filled yet").wait_for(timeout=180_000)
    notebook.show(gap1.locator(".jp-OutputArea"), "end")
    notebook.shot("2-gap1-not-filled")

    # gap 1, typed in the editor, then its check cell: six green ✓
    notebook.type_into(gap1, solution_cell(GAP[1]))
    notebook.run(gap1)
    model_check = notebook.cell('check("model")')
    notebook.run(model_check, "check model")
    text = notebook.output_text(model_check)
    notebook.shot("3-model-passes")
    assert text.count("✓") == 6 and "✗" not in text and "model: 8/8 points" in text
    passed = model_check.locator(".autograder-pass span").first
    assert passed.evaluate("el => getComputedStyle(el).color") == GREEN
    assert model_check.locator(".jp-OutputPrompt").text_content().strip() == ""  # no Out[n]: 8.0

    # the original's bug: softmax over the batch; a red ✗ and the hint that names dim=0
    broken = solution_cell(GAP[1]).replace("return self.output(x)",
                                           "return torch.softmax(self.output(x), dim=0)")
    notebook.type_into(gap1, broken)
    notebook.run(gap1)
    notebook.run(model_check, "check model (broken)")
    text = notebook.output_text(model_check)
    notebook.shot("4-model-softmax-dim0")
    assert "✗ batch_independence" in text and "dim=0" in text, text
    failed = model_check.locator(".autograder-fail span").first
    assert failed.evaluate("el => getComputedStyle(el).color") == RED
    assert model_check.locator(".autograder-hint").count() >= 1

    # mend gap 1, fill gaps 2 and 3, then Restart Kernel and Run All Cells
    notebook.type_into(gap1, solution_cell(GAP[1]))
    for n in (2, 3):
        notebook.type_into(notebook.cell(GAP[n]), solution_cell(GAP[n]))
    notebook.restart_and_run_all("Test accuracy: ")
    notebook.show(notebook.cell("plot_history(").locator(".jp-OutputArea"), "end")
    notebook.shot("5-history")
    for group, total in (("model", "8/8"), ("fit", "8/8"), ("accuracy", "4/4")):
        text = notebook.output_text(notebook.cell(f'check("{group}")'))
        assert f"{group}: {total} points" in text and "✗" not in text, text
    assert page.locator(".jp-OutputArea-output img").count() >= len(FIGURES)
    assert page.locator(STDERR).count() == 0
    notebook.show(notebook.cell("Test accuracy: "))
    notebook.shot("6-end")

    # saved: no error in the file, no number under a card, no .py beside it, lessons/ untouched
    copy = work / f"{LESSON}.ipynb"
    notebook.save(copy)
    saved = nbformat.read(copy, as_version=4)
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    for cell in saved.cells:
        if 'check("' in cell.source:
            assert [o.output_type for o in cell.outputs] == ["display_data"], cell.source
            assert "text/html" in cell.outputs[0].data
    # only the student's copies of the lessons, no .py beside them (a save pairs nothing)
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == \
        sorted(f"{lesson}.ipynb" for lesson in course.LESSONS)
    assert {p: p.read_bytes() for p in (course.REPO / "lessons").iterdir()} == lessons_before
    run = tmp_path / "runs"  # MNIST_RUN_DIR: this run's folder
    assert set(FIGURES) <= {p.stem for p in run.glob("*.png")} and (run / "metrics.json").exists()

    # after a kernel restart, a check cell run on its own says which cell to run first
    notebook.restart()
    model_check = notebook.cell('check("model")')
    notebook.run(model_check)
    text = " ".join(notebook.output_text(model_check).split())
    notebook.shot("7-after-restart")
    assert ("MyModel is not defined in this kernel: run the cell that defines it (gap 1, "
            "section 5. Create the model) first") in text, text
