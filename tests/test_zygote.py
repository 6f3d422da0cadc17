"""The fork server (engine/zygote.py) as `batch` uses it: one child per submission, forked in
a jail of its own, nothing of one submission reaching the next, and a dead server costing
speed, never a grade. What a forked child sees and can do is tested beside bubblewrap's in
test_jail.py and test_grader_attacks.py (each of their tests runs on both)."""
import os
import signal
import time

from submissions.catalogue import render, write

from autograder import lessons
from autograder.engine import grading, submission, zygote
from autograder.engine.sandbox import Limits

LESSON = lessons.get("01_mnist_dnn")

# Everything a student could change in the process that defines their file, to reach the next
# submission graded by the same fork server: torch's defaults, the grader's own modules, the
# probes, files in /tmp and /dev/shm, and a process left behind.
POISON = '''

class Poison:
    import os, subprocess, torch
    import autograder.lessons.common.graphs as graphs
    import autograder.lessons.mnist_dnn.probes as probes
    torch.set_default_dtype(torch.float64)
    torch.manual_seed = lambda *a, **k: None
    graphs.export = lambda *a, **k: {"forged": True}
    probes.PROBES.clear()
    for where in ("/tmp", "/dev/shm"):
        open(where + "/poison", "w").write("x")
    subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
'''


def verdicts(report) -> list:
    return [(r.check.id, r.passed, r.score) for r in report.results]


def test_each_submission_gets_a_fresh_jail(fork_server_here, tmp_path):
    plan = submission.load(write("reference", tmp_path)).plan()
    with zygote.Forks(LESSON) as forks:
        first, second = forks.student(plan), forks.student(plan)
        with first, second:
            assert first.run("model", 60)["ok"] and second.run("model", 60)["ok"]
            assert first.proc.pid != second.proc.pid and first.workdir != second.workdir
            assert first.jail.uid != second.jail.uid
            assert first.jail.cgroup.dirs != second.jail.cgroup.dirs


def test_one_submission_cannot_reach_the_next(fork_server_here, tmp_path):
    """A student who poisons everything in their child, then the reference, through one fork
    server: the reference gets exactly the verdicts it gets alone, and nothing is left."""
    reference = write("reference", tmp_path)
    poisoned = tmp_path / "poisoned.py"
    poisoned.write_text(render("reference") + POISON)
    alone = grading.grade(reference, LESSON)
    before = set(os.listdir("/tmp")), set(os.listdir("/dev/shm"))
    with zygote.Forks(LESSON) as forks:
        attacked = grading.grade(poisoned, LESSON, warm=forks)
        after = grading.grade(reference, LESSON, warm=forks)
    assert not attacked.passed
    assert verdicts(after) == verdicts(alone)
    assert "poison" not in set(os.listdir("/tmp")) - before[0]
    assert "poison" not in set(os.listdir("/dev/shm")) - before[1]


def test_a_dead_fork_server_costs_speed_not_grades(fork_server_here, tmp_path):
    """The fork server killed mid-batch: the next submissions start their children in
    bubblewrap, as without one, and get the same verdicts."""
    reference = write("reference", tmp_path)
    alone = grading.grade(reference, LESSON)
    with zygote.Forks(LESSON) as forks:
        first = grading.grade(reference, LESSON, warm=forks)
        forks.server.proc.send_signal(signal.SIGKILL)
        forks.server.proc.wait()
        second = grading.grade(reference, LESSON, warm=forks)
    assert verdicts(first) == verdicts(alone) == verdicts(second)


def test_children_die_with_the_fork_server(fork_server_here, tmp_path):
    """A child still running when the batch ends (its server closed) does not outlive it."""
    plan = submission.load(write("reference", tmp_path)).plan()
    forks = zygote.Forks(LESSON).__enter__()
    box = forks.student(plan)
    box.spawn()
    uid = box.jail.uid
    assert box.run("model", 60)["ok"]
    forks.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and uid_processes(uid):
        time.sleep(0.05)
    assert uid_processes(uid) == []
    box.close()


def uid_processes(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                found.append(int(entry))
        except OSError:
            pass
    return found


def test_where_it_cannot_run_it_says_why(fork_server_here):
    from autograder.engine.jail import Isolation

    assert "no jail" in zygote.unsupported(Isolation("process", "bwrap missing"))
    assert "not root" in zygote.unsupported(Isolation("jail", bwrap="x", own_uid=False,
                                                      cgroup="v1"))
    assert "cgroup" in zygote.unsupported(Isolation("jail", bwrap="x", own_uid=True))
    assert zygote.unsupported() == ""
