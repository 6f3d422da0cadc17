"""A grade depends only on the student's own work: not on the machine's load, not on a classmate
graded beside it, not on the grader's own failures (issue 17).

Limits count the jail's own time (engine/clock.py), so a machine with every core busy makes
grading slower, never a correct submission "too slow"; a hostile classmate graded at the same
time is held to one core by its cgroup; and when the machine starves a step beyond all reason,
the submission is not graded (never a zero), not cached, and graded on the next run.
"""
import csv
import json
import threading

from busy import HOSTILE, busy, load_average
from submissions.catalogue import render, write

from autograder import lessons
from autograder.engine import grading, zygote
from autograder.engine.sandbox import Limits
from autograder.frontends import batch

LESSON = lessons.get("01_mnist_dnn")
# The model group's probes take ~3 s of their own: well inside 8 s on any machine, and far
# outside it on the wall clock of a machine with four busy processes per core.
TIGHT = Limits(time_s=8, budget_s=60)


def verdicts(report) -> list:
    return [(r.check.id, r.passed, r.score, r.message) for r in report.results]


def test_load_and_a_hostile_classmate_change_no_grade(fork_server_here, tmp_path):
    reference = write("reference", tmp_path)
    hostile = tmp_path / "hostile.py"
    hostile.write_text(render("reference") + HOSTILE)
    with zygote.Forks(LESSON, TIGHT) as forks:
        quiet = grading.grade(reference, LESSON, only="model", limits=TIGHT, warm=forks)
        beside = {}
        with busy(per_core=4):
            classmate = threading.Thread(target=lambda: beside.update(report=grading.grade(
                hostile, LESSON, only="model", limits=TIGHT, warm=forks)))
            classmate.start()
            loaded = grading.grade(reference, LESSON, only="model", limits=TIGHT, warm=forks)
            print(f"load average while graded: {load_average()}")
            classmate.join()
    assert quiet.passed, verdicts(quiet)
    assert verdicts(loaded) == verdicts(quiet)
    # the hostile classmate's own 200 processes count as its own time: that is its doing
    assert not beside["report"].passed


def test_a_starved_grading_is_not_graded_not_cached_and_graded_next_run(fork_server_here,
                                                                       tmp_path):
    """A machine so busy that a step gets a small share of a CPU, for longer than twice its own
    limit, wall-clock: the grader's failure. The jail's CPU quota of 2 % of a core stands in for
    that machine (load itself starves no step deterministically: the cgroups share the CPU
    fairly). The row says "not graded" (no points, not a zero), the student's feedback says it
    is not their fault, nothing is cached, and the next run, with a whole core, grades it."""
    folder = tmp_path / "class"
    folder.mkdir()
    write("reference", folder)
    out = tmp_path / "grades.csv"
    starving = Limits(time_s=6, budget_s=60, wall_factor=2.0, wall_slack=0.0, cpu_cores=0.02)
    starved = batch.grade_folder(folder, out, lesson=LESSON.id, limits=starving,
                                 children="fork", workers=1)
    row = starved[0]["row"]
    assert row["status"] == "not graded", row
    assert "not graded: the grader ran out of time" in row["error"]
    assert "not yours" in starved[0]["feedback"]
    assert _csv(out)[0]["score"] == ""  # blank, not 0
    assert _cached(out) == []
    again = batch.grade_folder(folder, out, lesson=LESSON.id, children="fork", workers=1)
    assert again[0]["row"]["status"] == "graded" and not again[0]["cached"]
    assert again[0]["row"]["score"] == LESSON.max_score
    assert _cached(out) == ["reference"]


def _csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cached(out) -> list[str]:
    path = batch.cache_path(out)
    if not path.exists():
        return []
    return [json.loads(line)["student"] for line in path.read_text().splitlines() if line]
