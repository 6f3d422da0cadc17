"""The grader's interfaces: `python -m autograder grade|batch` and `pytest autograder`."""
import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from autograder.engine import report as reports
from autograder.frontends.batch import choose, find_submissions
from autograder.engine.checks import CheckResult
from autograder.engine.grading import Report
from submissions.catalogue import render, write
from autograder import lessons

L01 = lessons.get("01_mnist_dnn")

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
        "accuracy_matches_reference", "accuracy_in_chunks", "accuracy_returns_float",
        "accuracy_keeps_mode"]
    scope = json.loads((tmp_path / "gs.json").read_text())
    assert scope["score"] == 4 and all(t["status"] == "passed" for t in scope["tests"])


def test_grade_exits_1_when_a_check_fails_and_2_when_it_cannot_grade(tmp_path):
    failing = autograder("grade", write("no_shuffle", tmp_path), "--only", "fit")
    assert failing.returncode == 1
    assert "✗ fit_reshuffles" in failing.stdout and "score 7/8" in failing.stdout
    assert autograder("grade", tmp_path / "missing.py").returncode == 2
    unknown = autograder("grade", write("reference", tmp_path), "--only", "no_such_check")
    assert unknown.returncode == 2 and "neither a group" in unknown.stderr


BAD_ARGUMENTS = {  # arguments after the submission -> what the one-line message says
    "time_limit": (["--time-limit", "-1"], "--time-limit must be a positive number"),
    "zero_time": (["--time-limit", "0"], "--time-limit must be a positive number"),
    "memory_limit": (["--memory-limit", "-5"], "--memory-limit must be a positive number"),
    "json_folder_missing": (["--json", "/nonexistent/x.json"], "folder /nonexistent does not"),
    "gradescope_is_folder": (["--gradescope", "."], "is a folder; name a file"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_with_one_line_before_any_grading(tmp_path, case):
    arguments, message = BAD_ARGUMENTS[case]
    done = autograder("grade", write("reference", tmp_path), *arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""  # no scorecard: nothing was graded
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_an_output_file_may_not_overwrite_the_submission(tmp_path):
    submission = write("reference", tmp_path)
    done = autograder("grade", submission, "--json", submission)
    assert done.returncode == 2 and "would overwrite the submission" in done.stderr
    assert submission.read_text() == render("reference")


def test_grade_on_a_folder_points_to_batch_and_batch_on_a_file_points_to_grade(tmp_path):
    folder = autograder("grade", tmp_path)
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    assert "python -m autograder batch" in folder.stderr
    single = autograder("batch", write("reference", tmp_path), "--out", tmp_path / "g.csv")
    assert single.returncode == 2 and "python -m autograder grade" in single.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--time-limit", "-2"], "--time-limit must be a positive number"),
    (["--out", "/nonexistent/grades.csv"], "folder /nonexistent does not exist"),
])
def test_batch_checks_its_arguments_before_grading(tmp_path, arguments, message):
    (tmp_path / "class").mkdir()
    write("reference", tmp_path / "class").rename(tmp_path / "class" / "alice.py")
    done = autograder("batch", tmp_path / "class", "--out", tmp_path / "g.csv", *arguments)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""
    assert not (tmp_path / "g-feedback").exists()


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
    write("reference", class_dir).rename(class_dir / "dave.py")  # the notebook is graded
    out = tmp_path / "grades.csv"
    done = autograder("batch", class_dir, "--out", out, "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr  # carol could not be graded
    assert "dave: graded dave.ipynb, ignored dave.py" in done.stdout
    rows = {row["student"]: row for row in csv.DictReader(open(out))}
    assert sorted(rows) == ["alice", "bob", "carol", "dave"]
    assert rows["alice"]["score"] == rows["alice"]["max_score"] == "25"
    assert rows["bob"]["score"] == "24" and rows["bob"]["fit_reshuffles"] == "0"
    assert rows["bob"]["output_shape"] == "2"
    assert rows["alice"]["status"] == rows["bob"]["status"] == "graded"
    # neither an empty folder nor an unreadable notebook is an honest zero: no points at all
    assert rows["carol"]["status"] == "rejected" and rows["carol"]["error"] == (
        "could not grade: no .ipynb or .py file in the student's folder")
    assert rows["carol"]["score"] == rows["carol"]["output_shape"] == ""
    assert rows["carol"]["max_score"] == "25"
    assert rows["dave"]["status"] == "rejected" and rows["dave"]["score"] == ""
    assert rows["dave"]["error"].startswith("could not grade: could not read dave.ipynb: "
                                            "JSONDecodeError")
    assert "graded 2 of 4 submissions" in done.stdout  # alice and bob, not "4 of 4"
    assert "2 could not grade the file handed in" in done.stdout
    assert "  dave: could not grade: could not read dave.ipynb" in done.stdout
    feedback = tmp_path / "grades-feedback"
    assert "score 25/25" in (feedback / "alice.txt").read_text()
    dave = (feedback / "dave.txt").read_text()
    assert "could not read dave.ipynb" in dave and "note: graded dave.ipynb, ignored dave.py" in dave


def test_batch_prefers_a_notebook_then_the_shallowest_file_and_says_so(tmp_path):
    for name in ["dave.py", "dave.ipynb", "erin/work/old.ipynb", "erin/final.ipynb",
                 "erin/.ipynb_checkpoints/final-checkpoint.ipynb", "erin/helper.py",
                 "frank.py", "grades-feedback/frank.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = find_submissions(tmp_path, ignore=[tmp_path / "grades-feedback"])
    assert sorted(found) == ["dave", "erin", "frank"]
    assert choose(found["dave"], tmp_path) == (tmp_path / "dave.ipynb", (
        "graded dave.ipynb, ignored dave.py (one file per student: a notebook before a .py, "
        "then the first by name)"))
    path, note = choose(found["erin"], tmp_path)
    assert path == tmp_path / "erin" / "final.ipynb"
    assert note.startswith("graded erin/final.ipynb, ignored erin/work/old.ipynb, erin/helper.py")
    assert choose(found["frank"], tmp_path) == (tmp_path / "frank.py", "")


def test_gradebook_writes_every_number_the_same_way(tmp_path):
    checks = L01.checks
    half_point = dataclasses.replace(checks[0], points=0.5)  # output_shape
    graded = Report("01_mnist_dnn", "bob.py", [CheckResult(half_point, True, "")] + [
        CheckResult(c, c.group == "model", "") for c in checks[1:]])
    rows = [reports.gradebook_row("bob", graded),
            reports.gradebook_row("al", error="could not grade: no file", status="rejected")]
    reports.write_gradebook(rows, tmp_path / "g.csv", "01_mnist_dnn")
    bob, al = sorted(csv.DictReader(open(tmp_path / "g.csv")), key=lambda r: r["student"] != "bob")
    assert bob["output_shape"] == "0.5" and bob["batch_independence"] == "2"
    assert bob["fit_zero_grad"] == "0" and bob["score"] == "6.5" and bob["max_score"] == "23.5"
    assert al["score"] == al["output_shape"] == "" and al["max_score"] == "25"  # not a zero


def test_pytest_suite_runs_one_test_per_check(tmp_path):
    done = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
               "--submission", write("reference", tmp_path))
    assert done.returncode == 0, done.stdout
    assert "17 passed" in done.stdout


def test_pytest_suite_reports_failures_even_if_the_submission_patches_pytest(tmp_path):
    done = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
               "--submission", write("patch_pytest", tmp_path))
    assert done.returncode == 1
    assert "2 failed, 15 passed" in done.stdout
    assert "test_check[fit_visits_every_sample]" in done.stdout


def test_pytest_without_submission_skips_and_repo_pytest_does_not_collect_it():
    skipped = run("-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider")
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout
    assert "pass --submission PATH" in skipped.stdout
    collected = run("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert "test_grader_cli.py" in collected.stdout
    assert "autograder/test_submission.py" not in collected.stdout


def cache_entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in open(f"{out}.cache.jsonl")]


def test_batch_grades_only_new_or_changed_submissions_and_force_grades_all(tmp_path):
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    write("reference", class_dir).rename(class_dir / "alice.py")
    (class_dir / "bob.py").write_text("x = 1\n")  # defines nothing: graded without a sandbox
    out = tmp_path / "grades.csv"
    first = autograder("batch", class_dir, "--out", out)
    assert "(2 graded now, 0 unchanged since the last run)" in first.stdout, first.stderr
    assert "grading: 100%" in first.stderr  # the progress bar
    graded_at = {e["student"]: e["graded_at"] for e in cache_entries(out)}

    (class_dir / "carol.py").write_text("y = 2\n")  # a late student
    late = autograder("batch", class_dir, "--out", out)
    assert "(1 graded now, 2 unchanged since the last run)" in late.stdout, late.stderr
    entries = cache_entries(out)  # one line per student graded before (in the order they
    students = [e["student"] for e in entries]  # finished), then carol's
    assert sorted(students[:2]) == ["alice", "bob"] and students[2:] == ["carol"], students
    assert {e["student"]: e["graded_at"] for e in entries[:2]} == graded_at
    rows = {row["student"]: row for row in csv.DictReader(open(out))}
    assert sorted(rows) == ["alice", "bob", "carol"] and rows["alice"]["score"] == "25"
    assert "score 25/25" in (tmp_path / "grades-feedback" / "alice.txt").read_text()

    (class_dir / "bob.py").write_text("x = 2\n")  # bob hands in again
    again = autograder("batch", class_dir, "--out", out)
    assert "(1 graded now, 2 unchanged since the last run)" in again.stdout
    assert cache_entries(out)[-1]["student"] == "bob"
    forced = autograder("batch", class_dir, "--out", out, "--force")
    assert "(3 graded now, 0 unchanged since the last run)" in forced.stdout
    assert "score 25/25" in (tmp_path / "grades-feedback" / "alice.txt").read_text()


def test_a_cached_result_depends_on_the_bytes_the_lesson_and_the_limits():
    from autograder.frontends import gradecache

    same = gradecache.key(b"x", lesson="01_mnist_dnn", limits={"time_s": 20})
    assert same == gradecache.key(b"x", lesson="01_mnist_dnn", limits={"time_s": 20})
    assert same != gradecache.key(b"y", lesson="01_mnist_dnn", limits={"time_s": 20})
    assert same != gradecache.key(b"x", lesson="01_mnist_dnn", limits={"time_s": 30})


def test_batch_refuses_workers_with_a_scheduler(tmp_path):
    (tmp_path / "class").mkdir()
    done = autograder("batch", tmp_path / "class", "--out", tmp_path / "g.csv",
                      "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2")
    assert done.returncode == 2 and "drop one of the two" in done.stderr


def test_the_nbgrader_course_has_a_short_name(tmp_path):
    """`python -m autograder course …` is the nbgrader course's own command line."""
    helped = autograder("course", "--help")
    assert helped.returncode == 0 and "{build,grade}" in helped.stdout, helped.stderr
    missing = autograder("course", "grade", "--course-dir", tmp_path)
    assert missing.returncode == 2 and "--assignment" in missing.stderr
    assert "python -m autograder course grade" in missing.stderr


def test_grade_says_what_it_is_doing_while_it_grades(tmp_path):
    """A minute of silence looks like a hang: each step the grader starts is a line on stderr
    (the scorecard stays alone on stdout, for scripts)."""
    done = autograder("grade", write("reference", tmp_path), "--only", "model")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = done.stderr.splitlines()
    assert steps[0] == "grading: reading reference.py", done.stderr
    assert any("starting the sandbox" in step for step in steps), done.stderr
    assert "starting the sandbox" not in done.stdout and "score 8/8" in done.stdout


def test_a_submission_the_grader_failed_is_not_graded_never_a_zero_and_never_kept(tmp_path):
    """A sandbox that cannot start (here: 50 MB for a child that imports torch) is the grader's
    failure: the CSV, the student's feedback file, the class report and the terminal say "not
    graded" and why, with no points; the next run grades them again (nothing was cached)."""
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    write("reference", class_dir).rename(class_dir / "alice.py")
    out = tmp_path / "grades.csv"
    command = ["batch", class_dir, "--out", out, "--memory-limit", "50", "--children", "each",
               "--report", tmp_path / "report.html"]  # (a forked child shares torch's pages)
    first = autograder(*command)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "graded 0 of 1 submissions" in first.stdout
    assert "1 not graded: the grader or the machine failed, not the student" in first.stdout
    [row] = csv.DictReader(open(out))
    assert row["status"] == "not graded" and row["error"].startswith("not graded: ")
    assert row["score"] == row["output_shape"] == "" and row["max_score"] == "25"
    feedback = (tmp_path / "grades-feedback" / "alice.txt").read_text()
    assert "not graded: " in feedback and "not yours" in feedback
    report = (tmp_path / "report.html").read_text()
    assert "1 students, 0 graded, 1 not graded (the grader or the machine failed" in report
    again = autograder(*command)
    assert "(1 graded now, 0 unchanged since the last run)" in again.stdout, again.stdout
    assert not cache_entries(out)


def interrupt_when(command, ready, timeout=600):
    """Run the CLI in a session of its own, with Ctrl-C's disposition (a shell's background
    job ignores SIGINT); once `ready(process)`, send SIGINT to the whole group, as a terminal's
    Ctrl-C does. Returns (returncode, stdout, stderr, seconds from Ctrl-C to exit)."""
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "autograder", *map(str, command)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while not ready(process) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    interrupted_at = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err, time.monotonic() - interrupted_at


def test_ctrl_c_says_what_was_kept_and_the_next_run_uses_it(tmp_path):
    """Ctrl-C while the reference is in its sandbox: no traceback, the one result already
    graded is kept, nothing half-done is; the next run grades only the two others."""
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    (class_dir / "ann.py").write_text("x = 1\n")  # defines nothing: graded at once
    write("reference", class_dir).rename(class_dir / "ben.py")
    (class_dir / "cy.py").write_text("y = 2\n")
    out = tmp_path / "grades.csv"
    cache = Path(f"{out}.cache.jsonl")
    returncode, stdout, stderr, _ = interrupt_when(
        ["batch", class_dir, "--out", out],
        lambda _: cache.exists() and cache.read_text().count("\n") >= 1)
    assert returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and not out.exists()  # no CSV of half a class
    assert "interrupted: 1 graded result kept" in stderr and "grade the other 2" in stderr
    assert [entry["student"] for entry in cache_entries(out)] == ["ann"]
    again = autograder("batch", class_dir, "--out", out)
    assert "(2 graded now, 1 unchanged since the last run)" in again.stdout, again.stdout


def test_batch_grades_one_assignment_of_a_course_with_two(tmp_path):
    """nbgrader's submitted/<student>/<assignment>/ layout: without --assignment each
    student's first file, of either lesson, was graded; now it asks, and grades only that
    assignment's folders, as that lesson."""
    submitted = tmp_path / "submitted"
    for path in ("ann/01_mnist_dnn/ann01.py", "ann/02_mnist_cnn/ann02.py",
                 "bob/02_mnist_cnn/bob02.py", "cy/01_mnist_dnn/cy01.py"):
        (submitted / path).parent.mkdir(parents=True, exist_ok=True)
        (submitted / path).write_text("x = 1\n")  # defines nothing: graded without a sandbox
    out = tmp_path / "grades.csv"
    asked = autograder("batch", submitted, "--out", out)
    assert asked.returncode == 2 and asked.stdout == "", asked.stdout + asked.stderr
    assert "holds the assignments 01_mnist_dnn, 02_mnist_cnn" in asked.stderr
    assert "pass --assignment" in asked.stderr
    done = autograder("batch", submitted, "--out", out, "--assignment", "02_mnist_cnn")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: row for row in csv.DictReader(open(out))}
    assert sorted(rows) == ["ann", "bob"]  # cy handed in lesson 01 only
    assert all(row["status"] == "graded" for row in rows.values())
    assert "conv_output_size_values" in next(csv.reader(open(out)))  # lesson 02's checks
    feedback = (tmp_path / "grades-feedback" / "ann.txt").read_text()
    assert feedback.startswith("02_mnist_cnn — ann02.py"), feedback
