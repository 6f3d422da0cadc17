"""`check("<group>")` in a notebook: live objects or a graded file; stdout only; points back."""
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import selfcheck
from submissions.catalogue import render, write

REPO = Path(__file__).resolve().parent.parent
CALLS = '''
from autograder.selfcheck import check
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
    assert done.stdout.count("✓") == 6 + 6 + 3 + 1 and "✗" not in done.stdout
    assert "min_test_accuracy" not in done.stdout  # hidden checks only run when graded
    totals = [line for line in done.stdout.splitlines() if line.endswith(" points")]
    assert totals == ["model: 8/8 points", "fit: 8/8 points", "accuracy: 4/4 points",
                      "fit_zero_grad: 1/1 points"]  # no total for the hidden group


def test_live_mode_reports_a_bug_with_its_message(tmp_path):
    done = run_live("dropped_last_batch", tmp_path)
    assert "SCORES [8.0, 5.0, 4.0, 0.0, 1.0]" in done.stdout, done.stdout + done.stderr
    assert "✗ fit_visits_every_sample" in done.stdout and "last, partial batch" in done.stdout
    assert "\nfit: 5/8 points\n" in done.stdout


def test_file_mode_grades_once_and_returns_each_groups_points(tmp_path, monkeypatch, capsys):
    gradings = []
    real_grade = selfcheck.grade
    monkeypatch.setattr(selfcheck, "grade",
                        lambda *a, **k: gradings.append(a) or real_grade(*a, **k))
    monkeypatch.setenv(selfcheck.ENV_VAR, str(write("no_shuffle", tmp_path)))
    assert selfcheck.check("fit") == 7.0
    assert selfcheck.check("hidden") == 5.0
    assert selfcheck.check("model") == 8.0
    assert len(gradings) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert "✗ fit_reshuffles" in out and "✓ min_test_accuracy (hidden)" in out
    assert [line for line in out.splitlines() if not line.startswith(("✓", "✗"))] == [
        "fit: 7/8 points", "hidden: 5/5 points", "model: 8/8 points"]
    hidden = next(line for line in out.splitlines() if "min_test_accuracy" in line)
    assert "%" not in hidden  # a hidden check shows its verdict and generic message only


def test_unknown_check_name_is_an_error():
    with pytest.raises(Exception, match="neither a group"):
        selfcheck.check("no_such_group")
