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


def test_a_fork_server_killed_during_a_grading_costs_a_retry_not_points(fork_server_here,
                                                                        tmp_path):
    """The fork server killed while a child it forked runs a probe (its children die with it):
    the lost probe is the grader's failure, not the submission's, so the grading is done again,
    its children started in bubblewrap, and gets the verdicts of a grading on its own."""
    import threading

    reference = write("reference", tmp_path)
    alone = grading.grade(reference, LESSON)
    with zygote.Forks(LESSON) as forks:
        result = {}
        grading_thread = threading.Thread(target=lambda: result.update(
            report=grading.grade(reference, LESSON, warm=forks)))
        grading_thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not forked_children(forks.server.proc.pid):
            time.sleep(0.05)
        assert forked_children(forks.server.proc.pid), "no child of the fork server ran"
        time.sleep(1.0)  # inside a probe now
        forks.server.proc.send_signal(signal.SIGKILL)
        forks.server.proc.wait()
        grading_thread.join()
    assert verdicts(result["report"]) == verdicts(alone)


def forked_children(server: int) -> list[int]:
    """The processes below the fork server (its children's keepers and workers)."""
    from autograder.engine.sandbox import descendants, processes

    return [pid for pid in descendants(server, processes()) if pid != server]


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


def test_the_fork_server_shares_no_writable_page_with_its_children(fork_server_here):
    """Every forked child maps what the zygote mapped: a writable shared page there (tqdm's
    cross-process lock was one, a semaphore in /dev/shm) would be one all submissions share."""
    server = zygote.Zygote(LESSON)
    try:
        assert zygote.writable_shared_mappings(str(server.proc.pid)) == []
    finally:
        server.close()


# A student who takes tqdm's lock when their file is defined and never lets it go: with a lock
# shared by every child of the fork server, every later tqdm() (inside torch.export, inside
# fit) waited for it forever, and each classmate graded after it was "too slow".
HOLD_TQDM = "\nHOLD = __import__('tqdm').tqdm.get_lock().acquire()\n"


def test_a_submission_holding_a_lock_changes_no_classmates_grade(fork_server_here, tmp_path):
    reference = write("reference", tmp_path)
    holder = tmp_path / "holder.py"
    holder.write_text(render("reference") + HOLD_TQDM)
    limits = Limits(time_s=20, budget_s=120)
    alone = grading.grade(reference, LESSON, limits=limits)
    with zygote.Forks(LESSON, limits) as forks:
        grading.grade(holder, LESSON, limits=limits, warm=forks)
        after = [grading.grade(reference, LESSON, limits=limits, warm=forks) for _ in range(2)]
    assert alone.passed
    assert [verdicts(report) for report in after] == [verdicts(alone)] * 2


def owned_cgroups(tag: str) -> list:
    from pathlib import Path

    from autograder.engine.jail import CGROUP_NAME

    root = Path("/sys/fs/cgroup")
    return sorted(root.glob(f"*/{CGROUP_NAME}/{tag}-*")) + sorted(
        root.glob(f"{CGROUP_NAME}/{tag}-*"))


def jailed_pids(tag: str) -> set:
    found = set()
    for folder in owned_cgroups(tag):
        try:
            found |= set((folder / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return found


# An endless loop that also clears its own parent-death signal (PR_SET_PDEATHSIG, 0) and
# leaves a grandchild in a session of its own: neither may outlive the grader.
SPIN = """
class Spin:
    import ctypes, os
    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)
    if os.fork() == 0:
        os.setsid()
    while True:
        pass
"""


def test_nothing_survives_a_killed_grader_and_the_next_grader_sweeps_its_leftovers(
        fork_server_here, tmp_path):
    """kill -9 of `batch` while a forked child runs a student's endless loop: the child dies
    with it, even one that cleared its own parent-death signal, and its grandchildren (the
    jail's init keeps its own and takes its PID namespace down with it), and the next grader
    to start removes the dead grader's cgroups and private folders, which hold students'
    files."""
    import subprocess
    import sys

    from autograder.engine import leftovers

    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "looper.py").write_text(render("reference") + SPIN)
    batch = subprocess.Popen(
        [sys.executable, "-m", "autograder", "batch", str(folder), "--out",
         str(tmp_path / "grades.csv"), "--lesson", LESSON.id, "--children", "fork",
         "--time-limit", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and batch.poll() is None:
        tag = tag or leftovers.owner(batch.pid)
        if len(jailed_pids(tag)) >= 1 and any(folder_of(tag)):
            break
        time.sleep(0.2)
    running = jailed_pids(tag)
    assert running, "the student's child never started"
    time.sleep(1)  # in its endless loop now
    batch.kill()
    batch.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and jailed_pids(tag):
        time.sleep(0.1)
    assert jailed_pids(tag) == set(), "a jailed process outlived the grader"
    assert owned_cgroups(tag) and any(folder_of(tag)), "nothing left to sweep?"
    swept = subprocess.run([sys.executable, "-c", "from autograder.engine import jail; "
                            "print(jail.sweep_leftovers())"], capture_output=True, text=True,
                           check=True)
    assert tag in swept.stdout
    assert owned_cgroups(tag) == [] and not any(folder_of(tag))


def folder_of(tag: str):
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir()).glob(f"autograder-{tag}-*")
