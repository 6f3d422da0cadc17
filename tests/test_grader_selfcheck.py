"""`check("<group>")` in a notebook: live objects or a graded file; stdout only; points back;
a card that reads well (hints wrapped between words, repeats collapsed, HTML in Jupyter)."""
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.frontends import selfcheck
from submissions.catalogue import render, write
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

REPO = Path(__file__).resolve().parent.parent
CALLS = '''
from autograder.lessons.mnist_dnn import check
scores = [check(name) for name in ("model", "fit", "accuracy", "hidden", "fit_zero_grad")]
print("SCORES", scores)
'''


def run_live(variant: str, tmp_path) -> subprocess.CompletedProcess:
    """The variant's definitions run as a script (its __main__ is the 'notebook'), then checks."""
    definitions = render(variant).split("# %%\nmodel = MyModel()")[0]
    script = tmp_path / "notebook.py"
    script.write_text(definitions + CALLS)
    return subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_live_mode_probes_the_notebook_objects_and_writes_only_stdout(tmp_path):
    done = run_live("reference", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "SCORES [8.0, 8.0, 4.0, 0.0, 1.0]" in done.stdout
    checks = sum(len(L01.select(group, public_only=True))
                 for group in ("model", "fit", "accuracy", "fit_zero_grad"))
    assert done.stdout.count("✓") == checks and "✗" not in done.stdout
    assert "min_test_accuracy" not in done.stdout  # hidden checks only run when graded
    totals = [line for line in done.stdout.splitlines() if line.endswith(" points")]
    assert totals == ["model: 8/8 points", "fit: 8/8 points", "accuracy: 4/4 points",
                      "fit_zero_grad: 1/1 points"]  # no total for the hidden group


def test_live_mode_reports_a_bug_with_its_message(tmp_path):
    done = run_live("dropped_last_batch", tmp_path)
    assert "SCORES [8.0, 5.0, 4.0, 0.0, 1.0]" in done.stdout, done.stdout + done.stderr
    text = " ".join(done.stdout.split())  # hints wrap between words
    assert "✗ fit_visits_every_sample" in done.stdout and "last, partial batch" in text
    assert "\nfit: 5/8 points\n" in done.stdout


def test_file_mode_grades_once_and_returns_each_groups_points(tmp_path, monkeypatch, capsys):
    gradings = []
    real_grade = selfcheck.grade
    monkeypatch.setattr(selfcheck, "grade",
                        lambda *a, **k: gradings.append(a) or real_grade(*a, **k))
    monkeypatch.setenv(selfcheck.ENV_VAR, str(write("no_shuffle", tmp_path)))
    assert selfcheck.check("fit", lesson="01_mnist_dnn") == 7.0
    assert selfcheck.check("hidden", lesson="01_mnist_dnn") == 5.0
    assert selfcheck.check("model", lesson="01_mnist_dnn") == 8.0
    assert len(gradings) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert "✗ fit_reshuffles" in out and "✓ min_test_accuracy (hidden)" in out
    assert [line for line in out.splitlines() if not line.startswith(("✓", "✗", " "))] == [
        "fit: 7/8 points", "hidden: 5/5 points", "model: 8/8 points"]
    hidden = next(line for line in out.splitlines() if "min_test_accuracy" in line)
    assert "%" not in hidden  # a hidden check shows its verdict and generic message only


def test_unknown_check_name_is_an_error():
    with pytest.raises(Exception, match="neither a group"):
        selfcheck.check("no_such_group", lesson="01_mnist_dnn")


def test_card_wraps_hints_between_words_and_shares_a_repeated_hint():
    from autograder.engine.checks import CheckResult
    from autograder.engine.report import CARD_WIDTH, group_card

    unfilled = "gap 1 is not filled yet: MyModel still raises NotImplementedError — replace it"
    checks = L01.select("model")
    results = [CheckResult(c, False, unfilled) for c in checks]
    lines = group_card("model", results)
    assert [line[:2] for line in lines[:len(checks)]] == ["✗ "] * len(checks)
    assert sum("NotImplementedError" in line for line in lines) == 1  # once, not six times
    assert f"(all {len(checks)} above)" in lines[len(checks)]
    assert all(len(line) <= CARD_WIDTH for line in lines if line.startswith(" "))
    assert lines[-1] == "model: 0/8 points"


def test_card_shows_one_hint_per_failing_check_and_none_for_passing_ones():
    from autograder.engine.checks import CheckResult
    from autograder.engine.report import group_card, group_card_html

    checks = L01.select("model")
    results = [CheckResult(c, c.id != "batch_independence", f"hint for {c.id} " * 12)
               for c in checks]
    lines = group_card("model", results)
    hints = [line for line in lines if line.startswith("    → ")]
    assert len(hints) == 1 and "hint for batch_independence" in hints[0]
    page = group_card_html("model", results)
    assert page.count('class="autograder-pass"') == len(checks) - 1
    assert page.count('class="autograder-fail"') == 1 and "#cf222e" in page
    assert page.count('class="autograder-hint"') == 1 and "model: 6/8 points" in page


def run_in_kernel(cells: list[str]):
    """The cells, run in order in a real kernel (errors allowed, as a student's); the notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(REPO)}}).execute()
    return nb


def card_text(cell) -> str:
    """The card's plain text, one line (hints wrap between words): the cell's last display
    (tqdm.auto may show a progress widget before it)."""
    card = [o for o in cell.outputs if o.output_type == "display_data"][-1]
    return " ".join(card.data["text/plain"].split())


KERNEL_CELLS = [
    "from autograder.lessons.mnist_dnn import check\ncheck('model')",  # MyModel never defined
    "check('model') + 0",  # the points are still a float
]


def test_after_a_restart_a_check_is_one_neutral_line_that_names_the_cell_to_run():
    """A real kernel, as after a restart: the check cell runs before the cell of gap 1."""
    nb = run_in_kernel(KERNEL_CELLS)
    card, = nb.cells[0].outputs  # the notice only: no "0.0" echoed under it
    assert card.output_type == "display_data"
    page, text = card.data["text/html"], card_text(nb.cells[0])
    assert "✗" not in page and "✗" not in text and "0/8" not in text  # not six red failures
    assert "not run yet" in page and "#cf222e" not in page  # neutral, not red
    assert text.startswith("model: not run yet — MyModel is not defined in this kernel: run the "
                           "cell that defines it (gap 1, section 5. Create the model) first")
    assert "Run ▸ Run All Above Selected Cell" in text
    assert nb.cells[1].outputs[-1].data["text/plain"] == "0.0"


MODEL = render("reference").split("# %%\nclass MyModel")[1].split("# %%")[0]
MODEL = "import torch\nfrom torch import nn\n\nclass MyModel" + MODEL
CHECK_MODEL = "from autograder.lessons.mnist_dnn import check\ncheck('model')"


def test_a_check_never_grades_the_definition_of_a_cell_that_failed_since():
    """Issue 19: the student breaks the cell of gap 1 (a syntax error, then an error while the
    class is defined) and runs the check: it says that cell failed, instead of grading the
    MyModel the kernel kept from an earlier run (8/8, or the error of code already deleted)."""
    syntax_error = MODEL.replace("super().__init__()", "super().__init__(")
    runtime_error = MODEL.replace("    def __init__(self):",
                                  "    width = WIDTH  # not defined\n\n    def __init__(self):")
    nb = run_in_kernel([MODEL, CHECK_MODEL, syntax_error, CHECK_MODEL, runtime_error,
                        CHECK_MODEL, MODEL, CHECK_MODEL])
    assert "model: 8/8 points" in card_text(nb.cells[1])
    assert nb.cells[2].outputs[-1].ename == "SyntaxError"
    text = card_text(nb.cells[3])
    assert text.startswith("model: not checked — the cell defining MyModel failed when you last "
                           "ran it (SyntaxError: "), text
    assert "line 6 of that cell" in text and "✓" not in text and "8/8" not in text
    assert "#cf222e" in nb.cells[3].outputs[-1].data["text/html"]  # something to fix: red
    assert nb.cells[4].outputs[-1].ename == "NameError"
    assert "the cell defining MyModel failed when you last ran it (see the error under it)" in \
        card_text(nb.cells[5])
    assert "model: 8/8 points" in card_text(nb.cells[7])  # run again, mended: checked again


FIT_NO_EVALUATE = render("reference").split("# %%\ndef evaluate")[0] + \
    "def fit" + render("reference").split("\ndef fit")[1].split("# %%")[0]


def test_a_helper_of_the_lesson_not_run_yet_names_its_cell():
    """fit calls the lesson's evaluate, whose cell the student skipped: the check says to run
    that cell, as for a gap, not NameError."""
    nb = run_in_kernel([FIT_NO_EVALUATE, "from autograder.lessons.mnist_dnn import check\n"
                                         "check('fit')"])
    text = card_text(nb.cells[1])
    assert text.startswith("fit: not run yet — evaluate is not defined in this kernel: run the "
                           "cell that defines it (section 6. Training) first"), text
    assert "NameError" not in text and "✗" not in text
