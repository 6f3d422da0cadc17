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


KERNEL_CELLS = [
    "from autograder.lessons.mnist_dnn import check\ncheck('model')",  # MyModel never defined
    "check('model') + 0",  # the points are still a float
]


def test_in_a_kernel_the_card_is_html_with_no_number_under_it_and_names_the_cell_to_run():
    """A real kernel, as after a restart: the check cell runs before the cell of gap 1."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in KERNEL_CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()
    card, = nb.cells[0].outputs  # the card only: no "0.0" echoed under it
    assert card.output_type == "display_data"
    page, text = card.data["text/html"], card.data["text/plain"]
    assert page.count("✗") == 6 and "#cf222e" in page
    assert ("MyModel is not defined in this kernel: run the cell that defines it (gap 1, "
            "section 5. Create the model) first") in " ".join(text.split())
    assert "your submission must define" not in text
    assert text.count("not defined") == 1  # one hint for the six checks
    assert nb.cells[1].outputs[-1].data["text/plain"] == "0.0"
