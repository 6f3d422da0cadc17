"""The student's JupyterLab session, as a student lives it, in a real browser.

`make student`'s set-up (autograder.frontends.student) on a temporary copy: JupyterLab on 127.0.0.1,
Debian's chromium driven by playwright. The student runs the notebook, types gap 1 in the
editor, runs its check cell (✓ lines), breaks it the way the original did (softmax over
dim 0: a ✗ line and its hint), then with a syntax error (the check says the cell failed, it
does not grade the older class), fills gaps 2 and 3, then Kernel ▸ Restart Kernel and Run All
Cells: every figure is drawn, no cell fails, and saved in work/runs/, which JupyterLab's file
browser shows. After a restart, a check run alone is one neutral "not run yet" line. In
lesson 02, the training bar moves with every batch, not once an epoch. Screenshots go to
runs/ci-screenshots/.

Needs /usr/bin/chromium (`make browser`, run by `make test`): without it the test fails, it
does not skip. `pytest -m "not browser"` leaves it out of a quick local run.
"""
import contextlib
import re
import time

import nbformat
import pytest
from student_lab import (LESSON, LabServer, Notebook, filled_copy, launch, missing_browser,
                         solution_cell)

from autograder.authoring import course
from autograder.frontends import student
from autograder.frontends.nbgrader.preprocessors import set_parameters

pytestmark = pytest.mark.browser

GAP = {n: f"TODO (gap {n})" for n in (1, 2, 3)}
GREEN, RED = "rgb(26, 127, 55)", "rgb(207, 34, 46)"  # report.PASS_COLOR, FAIL_COLOR
FIGURES = ("one_digit", "some_digits", "history", "predictions", "errors", "confusion_matrix",
           "doubts")
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


CNN = course.LESSONS[1]


@pytest.fixture
def work(tmp_path):
    """The student's copies, as `make student` makes them, each trained for one epoch."""
    folder = tmp_path / "work"
    for copy in student.prepare(folder):
        nb = nbformat.read(copy, as_version=4)
        [parameters] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        parameters.source = set_parameters(parameters.source, {"EPOCHS": 1})
        nbformat.write(nb, copy)
    return folder


@contextlib.contextmanager
def lab(work, tmp_path, lesson: str):
    """`make student`'s JupyterLab in chromium, opened on `lesson`'s copy; figures go where a
    student's go (work/runs/, no $MNIST_RUN_DIR)."""
    problem = missing_browser()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with LabServer(work, None, tmp_path / "jupyterlab.log") as server, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            notebook = Notebook(browser.new_page(viewport={"width": 1400, "height": 1000}))
            notebook.open(server.url(f"/lab/tree/{lesson}.ipynb"))
            yield notebook
            print("timings (s):", {k: round(v, 2) for k, v in notebook.timings.items()})
        finally:
            browser.close()


@pytest.fixture
def notebook(work, tmp_path):
    with lab(work, tmp_path, LESSON) as notebook:
        yield notebook


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

    # a syntax error in gap 1: the check says that cell failed, it does not grade the old class
    notebook.type_into(gap1, solution_cell(GAP[1]).replace("super().__init__()",
                                                           "super().__init__("))
    notebook.run(gap1)
    notebook.run(model_check, "check model (cell failed)")
    text = " ".join(notebook.output_text(model_check).split())
    notebook.shot("4b-model-cell-failed")
    assert "the cell defining MyModel failed when you last ran it (SyntaxError" in text, text
    assert "✓" not in text and "✗" not in text and "points" not in text

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
    # the figures are beside the notebook, in work/runs/<date-time>/, where the student's
    # JupyterLab (rooted in work/) can open them
    run = max((work / "runs").iterdir())  # this kernel's run: the first one stopped at gap 1
    assert set(FIGURES) <= {p.stem for p in run.glob("*.png")} and (run / "metrics.json").exists()
    if not page.locator(".jp-FileBrowser").is_visible():
        page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    page.locator(".jp-DirListing-item", has_text="runs").first.wait_for(timeout=30_000)
    notebook.shot("6b-file-browser-shows-runs")

    # after a kernel restart, a check cell run on its own is one neutral line: which cell to run
    notebook.restart()
    model_check = notebook.cell('check("model")')
    notebook.run(model_check)
    text = " ".join(notebook.output_text(model_check).split())
    notebook.shot("7-after-restart")
    assert ("model: not run yet — MyModel is not defined in this kernel: run the cell that "
            "defines it (gap 1, section 5. Create the model) first") in text, text
    assert "✗" not in text and "0/8" not in text


def test_lesson_02s_training_bar_moves_with_every_batch(work, tmp_path):
    """Issue 19: a CNN's epoch takes tens of seconds on a CPU; the bar sat at 0 % all along."""
    nbformat.write(filled_copy(CNN, {"EPOCHS": 1}), work / f"{CNN}.ipynb")  # gaps filled
    with lab(work, tmp_path, CNN) as notebook:
        training = notebook.cell("history = fit(model,")  # not dnn_history = fit(dnn,
        notebook.run_all_above(training)
        before, seen, start = notebook.start(training), [], time.perf_counter()
        while not notebook.finished(training, before):
            assert time.perf_counter() < start + 600, "lesson 02's epoch took over 10 minutes"
            seen += re.findall(r"epoch 1/1: +\d+%\|[^|]*\| *(\d+)/(\d+)",
                               notebook.output_text(training))
            if len(seen) == 3:
                notebook.shot("8-lesson-02-bar-mid-epoch")
            time.sleep(0.2)
        moved = {int(done) for done, total in seen if 0 < int(done) < int(total)}
        assert len(moved) >= 2, f"the bar showed {sorted(moved)} batches during the epoch"
        assert "Error" not in notebook.output_text(training)
