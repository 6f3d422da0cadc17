"""The grader's interfaces: `python -m autograder grade|batch` and `pytest autograder`."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext

from submissions.catalogue import render, write

REPO = Path(__file__).resolve().parent.parent


def run(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def autograder(*args, **kwargs):
    return run("-m", "autograder", *args, **kwargs)


def test_grade_writes_json_and_gradescope_and_exits_0_when_all_pass(tmp_path):
    done = autograder("grade", write("reference", tmp_path), "--only", "accuracy",
                      "--json", tmp_path / "r.json", "--gradescope", tmp_path / "gs.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "score 4/4 — all checks passed" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["lesson"] == "01_mnist_dnn" and report["score"] == report["max_score"] == 4
    assert [c["id"] for c in report["checks"]] == [
        "accuracy_matches_reference", "accuracy_returns_float", "accuracy_keeps_mode"]
    scope = json.loads((tmp_path / "gs.json").read_text())
    assert scope["score"] == 4 and all(t["status"] == "passed" for t in scope["tests"])


def test_grade_exits_1_when_a_check_fails_and_2_when_it_cannot_grade(tmp_path):
    failing = autograder("grade", write("no_shuffle", tmp_path), "--only", "fit")
    assert failing.returncode == 1
    assert "✗ fit_reshuffles" in failing.stdout and "score 7/8" in failing.stdout
    assert autograder("grade", tmp_path / "missing.py").returncode == 2
    unknown = autograder("grade", write("reference", tmp_path), "--only", "no_such_check")
    assert unknown.returncode == 2 and "neither a group" in unknown.stderr


def test_a_fake_results_file_written_by_the_submission_changes_nothing(tmp_path):
    results = tmp_path / "results.json"
    done = autograder("grade", write("fake_results_file", tmp_path), "--only", "fit",
                      "--gradescope", results, env={"FAKE_RESULTS": str(results)})
    assert done.returncode == 1
    assert json.loads(results.read_text())["score"] == 7  # the honest score, not 999


def test_batch_grades_a_class_with_broken_submissions(tmp_path):
    class_dir = tmp_path / "class"
    (class_dir / "bob").mkdir(parents=True)
    (class_dir / "carol").mkdir()  # an empty folder: nothing to grade
    write("reference", class_dir).rename(class_dir / "alice.py")
    notebook = jupytext.reads(render("no_shuffle"), fmt="py:percent")
    jupytext.write(notebook, class_dir / "bob" / "01_mnist_dnn.ipynb")
    (class_dir / "dave.ipynb").write_text("{ this is not a notebook")
    out = tmp_path / "grades.csv"
    done = autograder("batch", class_dir, "--out", out, "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr  # carol could not be graded
    rows = {row["student"]: row for row in csv.DictReader(open(out))}
    assert sorted(rows) == ["alice", "bob", "carol", "dave"]
    assert float(rows["alice"]["score"]) == 25
    assert float(rows["bob"]["score"]) == 24 and float(rows["bob"]["fit_reshuffles"]) == 0
    assert rows["carol"]["error"].startswith("could not grade") and rows["carol"]["score"] == "0"
    assert float(rows["dave"]["score"]) == 0 and rows["dave"]["error"] == ""
    feedback = tmp_path / "grades-feedback"
    assert "score 25/25" in (feedback / "alice.txt").read_text()
    assert "could not read dave.ipynb" in (feedback / "dave.txt").read_text()


def test_pytest_suite_runs_one_test_per_check(tmp_path):
    done = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
               "--submission", write("reference", tmp_path))
    assert done.returncode == 0, done.stdout
    assert "16 passed" in done.stdout


def test_pytest_suite_reports_failures_even_if_the_submission_patches_pytest(tmp_path):
    done = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
               "--submission", write("patch_pytest", tmp_path))
    assert done.returncode == 1
    assert "2 failed, 14 passed" in done.stdout
    assert "test_check[fit_visits_every_sample]" in done.stdout


def test_pytest_without_submission_skips_and_repo_pytest_does_not_collect_it():
    skipped = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider")
    assert skipped.returncode == 0 and "16 skipped" in skipped.stdout
    collected = run("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert "test_grader_cli.py" in collected.stdout
    assert "autograder/test_01_mnist_dnn.py" not in collected.stdout
