"""Submissions that attack the grader, from inside their jail, end to end.

Each one is the correct template (tests/submissions/reference_min.py) plus a class whose body
runs the attack when the grader defines the submission. Each test asserts the outcome: the
submission is graded, nothing outside its jail changed (the repository, the venv, the data,
other submissions, grades.csv, /tmp, /dev/shm), no process survives, nothing hangs, no secret
leaks. Where the jail is missing, CI fails these tests instead of skipping them.
"""
import csv
import io
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from autograder.engine import grading, wire, zygote
from autograder.engine import jail as jails
from autograder.lessons.common.datacache import split_files, verify
from autograder.engine.grading import grade
from autograder.engine.report import scorecard
from autograder.engine.sandbox import Limits

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = (REPO / "tests" / "submissions" / "reference_min.py").read_text()
STUB = ("import torch\nfrom torch import nn\n\n\nclass MyModel(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        raise NotImplementedError('gap not filled yet')\n")


@pytest.fixture(scope="module", autouse=True)
def jailed(jail_isolation):
    return jail_isolation


@pytest.fixture(scope="module", autouse=True, params=["bwrap", "fork server"])
def children(request, jailed):
    """Every attack runs twice: on children started in bubblewrap (`grade` of one file), and
    on children forked by a fork server (what `batch` uses, engine/zygote.py)."""
    if request.param == "bwrap":
        yield
        return
    request.getfixturevalue("fork_server_here")
    patch = pytest.MonkeyPatch()
    patch.setattr(sys.modules[__name__], "grade", forked_grade)
    yield
    patch.undo()


def forked_grade(path, *args, limits=None, **kwargs):
    """`grade`, its children forked by a fork server of its own."""
    limits = limits or Limits()
    with zygote.Forks("01_mnist_dnn", limits) as forks:
        return grading.grade(path, *args, limits=limits, warm=forks, **kwargs)


def attack(body: str, base: str = TEMPLATE) -> str:
    """The submission `base` with a class whose body runs `body` at definition time."""
    return base + "\n\nclass Attack:\n" + textwrap.indent(textwrap.dedent(body), "    ") + "\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def jail_uids(monkeypatch):
    """The uids of the jails this test starts (other gradings may run beside it)."""
    used = []
    pick = jails.free_uid

    def recorded():
        used.append(pick())
        return used[-1]

    monkeypatch.setattr(jails, "free_uid", recorded)
    return used


def jail_processes(uids) -> list[int]:
    """Processes left running under the uids of the test's jails (none may survive)."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            if uid in uids:
                left.append(int(entry))
    return left


def cli(*args, timeout=300, env=None):
    """The CLI as an instructor runs it on files that may not say which lesson they are."""
    if args[0] in ("grade", "batch") and "--lesson" not in args:
        args = (*args, "--lesson", "01_mnist_dnn")
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def by_id(report):
    return {r.check.id: r for r in report.results}


def test_escaping_processes_die_with_the_jail(tmp_path, jail_uids):
    """clone(CLONE_PARENT) then setsid with an empty environment (a sibling of the sandbox
    child, not its descendant, not tagged), and a process that keeps forking and exiting:
    before the jail they outlived `batch` and rewrote grades.csv."""
    path = write(tmp_path, "escape.py", attack("""
        import ctypes, os, signal, time
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_PARENT, SYS_CLONE = 0x8000, 56  # x86_64
        if libc.syscall(SYS_CLONE, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0) == 0:
            os.setsid()
            os.execve("/bin/sleep", ["sleep", "60"], {})
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for _ in range(300):
                    if os.fork() == 0:
                        os.execve("/bin/sleep", ["sleep", "60"], {})
                    time.sleep(0.05)
                os._exit(0)
            os._exit(0)
    """))
    before = sleepers()
    report = grade(path, only="accuracy")
    assert report.score == report.max_score, scorecard(report)
    assert jail_uids and jail_processes(jail_uids) == []
    assert sleepers() <= before


def sleepers() -> set[int]:
    """`sleep 60` processes (what the escape test's processes become)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline") if entry.isdigit() else None
            if cmdline and cmdline.read_bytes() == b"sleep\x0060\x00":
                found.add(int(entry))
        except OSError:
            pass
    return found


def test_a_classmate_can_be_neither_read_nor_changed_nor_killed(tmp_path):
    """In `batch`, one submission reads a classmate's file from the folder on the grader's
    command line (to grade itself with it), edits the next one, and SIGKILLs every process it
    can (before the jail: two correct classmates got 0/25)."""
    folder = tmp_path / "class"
    folder.mkdir()
    alice = write(folder, "alice.py", TEMPLATE)
    zoe = write(folder, "zoe.py", TEMPLATE)
    write(folder, "mallory.py", attack(f"""
        import os, signal
        try:
            exec(open({str(alice)!r}).read(), globals())
        except OSError:
            pass
        try:
            open({str(zoe)!r}, "w").write("broken")
        except OSError:
            pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    """, base=STUB))
    out = tmp_path / "grades.csv"
    done = cli("batch", folder, "--out", out, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert alice.read_text() == TEMPLATE and zoe.read_text() == TEMPLATE
    assert rows["alice"]["score"] == rows["zoe"]["score"], rows
    assert float(rows["alice"]["score"]) >= 20, rows["alice"]  # every public check passes
    assert float(rows["mallory"]["score"]) == 0, rows["mallory"]


def test_the_data_venv_tmp_and_shm_are_out_of_reach(tmp_path, jail_uids):
    """Write through a mapping into the training data (every later grading got wrong hidden
    results), drop a .pth into the venv (it ran in the next grader), leave gigabytes in /tmp
    and /dev/shm."""
    train = split_files(("train",))["train"]
    site = sysconfig.get_paths()["purelib"]
    before = {site: set(os.listdir(site))}
    path = write(tmp_path, "vandal.py", attack(f"""
        import mmap, os
        try:
            with open({str(train)!r}, "r+b") as f:
                m = mmap.mmap(f.fileno(), 0)
                m[1000:2000] = b"\\xff" * 1000
        except (OSError, ValueError):
            pass
        try:
            open({site!r} + "/zz_evil.pth", "w").write("import os; os.system('true')")
        except OSError:
            pass
        for where, megabytes in (("/tmp", 1200), ("/dev/shm", 1500)):
            try:
                with open(where + "/junk", "wb") as f:
                    for _ in range(megabytes):
                        f.write(b"x" * 2 ** 20)
            except OSError:
                pass
    """))
    report = grade(path, only="accuracy", limits=Limits(memory_mb=4096))
    assert report.score == report.max_score, scorecard(report)
    assert verify(train)
    for where in ("/tmp", "/dev/shm"):
        assert not (Path(where) / "junk").exists(), where
    assert set(os.listdir(site)) == before[site]
    assert jail_uids and jail_processes(jail_uids) == []


def test_shared_memory_counts_against_the_limit(tmp_path):
    """5 GB of shared anonymous memory under a 4096 MB limit went unnoticed (25/25)."""
    path = write(tmp_path, "hog.py", attack("""
        import mmap
        hog = mmap.mmap(-1, 1600 * 2 ** 20, flags=mmap.MAP_SHARED)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    """))
    report = grade(path, only="accuracy", limits=Limits(memory_mb=1024))
    assert report.score == 0, scorecard(report)
    assert all("memory" in r.message for r in report.results), scorecard(report)


def test_the_grader_cannot_be_signalled_or_blocked(tmp_path, jail_uids):
    """SIGKILL or SIGSTOP the grader (os.getppid()), or forge a ready frame, fill the request
    pipe and stop: before, the grader died or blocked forever in write()."""
    path = write(tmp_path, "blocker.py", attack("""
        import io, os, signal, sys, torch
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(os.getppid(), sig)
            except OSError:
                pass
        req, res = int(sys.argv[1]), int(sys.argv[2])
        buffer = io.BytesIO()
        torch.save({"kind": "ready", "errors": {}}, buffer)
        os.write(res, b"AGF1" + len(buffer.getvalue()).to_bytes(8, "big") + buffer.getvalue())
        pipe = os.open(f"/proc/self/fd/{req}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            while True:
                os.write(pipe, b"x" * 4096)
        except BlockingIOError:
            pass
        os.kill(os.getpid(), signal.SIGSTOP)
    """))
    limits = Limits(time_s=3, startup_s=30, budget_s=25)
    report = grade(path, only="accuracy", limits=limits)
    assert report.score == 0
    assert own_seconds(report) < limits.budget_s + 2  # bounded by the budget, not the attacker
    assert jail_uids and jail_processes(jail_uids) == []


def own_seconds(report) -> float:
    """The children's own time the probes took (engine/clock.py): what the budget bounds,
    however busy the machine; the student's jail and the clean child each have the budget."""
    return sum(seconds for probe, seconds in report.probe_seconds.items() if probe != "startup")


def test_one_budget_per_submission(tmp_path):
    """Staying inside every probe's limit took 444 s for one grading (start-up paid again
    after each timeout). Now the submission's budget ends it, and says so."""
    path = write(tmp_path, "slow.py", TEMPLATE + textwrap.dedent("""

        import time


        def accuracy(model, x, y, chunk=1000):
            time.sleep(1000)
    """))
    limits = Limits(time_s=6, budget_s=8)  # a fork server restarts a child in ~0.1 s: what
    report = grade(path, limits=limits)     # the timeout leaves is too short for the rest
    assert own_seconds(report) < 2 * limits.budget_s + 2
    assert any("used up" in r.message for r in report.results), scorecard(report)


def test_no_secret_no_solution_no_forged_lines_in_feedback(tmp_path, monkeypatch):
    """An exception message carrying the grader's environment (an instructor's API token),
    the solution's source and fake "✓ ... [2/2]" lines."""
    monkeypatch.setenv("INSTRUCTOR_API_TOKEN", "tok-5ecret-42")
    solution = REPO / "solutions" / "01_mnist_dnn.py"
    text = TEMPLATE.replace("        return self.out(x)", textwrap.indent(textwrap.dedent(f"""
        import os
        try:
            leaked = open({str(solution)!r}).read()
        except OSError as error:
            leaked = str(error)
        raise RuntimeError("\\n✓ output_shape [2/2] all good\\nscore 25/25 — all checks passed\\n"
                           + os.environ.get("INSTRUCTOR_API_TOKEN", "") + leaked[-300:])
    """), "        "), 1)
    path = write(tmp_path, "forger.py", text)
    report = grade(path, only="model")
    card = scorecard(report, student=True)
    assert "tok-5ecret-42" not in card and "INSTRUCTOR_API_TOKEN" not in card
    assert solution.read_text()[-120:-60].strip() not in card
    real = {r.check.id for r in report.results if r.passed}
    for line in card.splitlines():
        if line.startswith("✓"):
            assert line.split()[1] in real, line
        assert not line.startswith("score 25/25"), line


@pytest.mark.parametrize("frame", ["a list", "a tuple key"])
def test_forged_frames_are_graded_not_crashes(tmp_path, frame):
    """A forged "ready" frame that is a list, or an error record holding a dict with a tuple
    key (which broke --json): the grader exited 2; now the submission is graded."""
    forged = ('["ready"]' if frame == "a list" else
              '{"kind": "ready", "errors": {"MyModel": {"type": "X", "k": {(1, 2): 3}}}}')
    path = write(tmp_path, "frames.py", attack(f"""
        import io, os, sys, torch
        buffer = io.BytesIO()
        torch.save({forged}, buffer)
        os.write(int(sys.argv[2]),
                 b"AGF1" + len(buffer.getvalue()).to_bytes(8, "big") + buffer.getvalue())
    """))
    done = cli("grade", path, "--only", "accuracy", "--json", tmp_path / "r.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["score"] == 0


@pytest.mark.parametrize("kind", ["deep expression", "100k cells", "huge output"])
def test_hostile_files_are_graded_quickly_not_crashes(tmp_path, kind):
    if kind == "deep expression":
        path = write(tmp_path, "deep.py", TEMPLATE + "\n# %%\nX = " + "-" * 100_000 + "1\n")
    else:
        cells = [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
                  "execution_count": None}]
        if kind == "100k cells":
            cells *= 100_000
        else:
            cells[0]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                    "text": "x" * (40 * 2 ** 20)}]
        path = tmp_path / "big.ipynb"
        path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))
    done = cli("grade", path, "--only", "accuracy", "--json", tmp_path / "r.json")
    if kind == "deep expression":  # that cell is skipped; the rest is graded
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["score"] == report["max_score"]
    else:  # not read at all: not graded, and why (never an honest-looking zero)
        assert done.returncode == 2, done.stdout + done.stderr
        assert ("2000 cells" if kind == "100k cells" else "is over 32 MB") in done.stderr
        assert not (tmp_path / "r.json").exists()


def test_file_names_cannot_inject_formulas_into_the_gradebook(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("=HYPERLINK(1)", "+cmd|x", "@SUM(1)", "-2"):
        write(folder, f"{name}.py", STUB)
    out = tmp_path / "grades.csv"
    done = cli("batch", folder, "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    students = [row["student"] for row in csv.DictReader(out.open())]
    assert sorted(students) == sorted(["'=HYPERLINK(1)", "'+cmd|x", "'@SUM(1)", "'-2"])


def test_a_low_memory_limit_is_not_blamed_on_the_reference(tmp_path):
    """--memory-limit 1000 failed the reference: the data cache's writable mapping counted."""
    path = write(tmp_path, "reference.py", TEMPLATE)
    report = grade(path, public_only=True, limits=Limits(memory_mb=1000))
    assert report.passed, scorecard(report)


def test_without_a_jail_batch_refuses_unless_told_and_reports_say_so(tmp_path):
    """Where no jail can start (simulated with AUTOGRADER_NO_JAIL), a student grading their own
    file still gets a scorecard that says so; batch grades other people's code only with
    --no-jail."""
    folder = tmp_path / "class"
    folder.mkdir()
    stub = write(folder, "alice.py", STUB)
    no_jail = {"AUTOGRADER_NO_JAIL": "1"}
    own = cli("grade", stub, "--only", "accuracy", env=no_jail)
    assert own.returncode == 1 and "isolation: process only" in own.stdout, own.stdout
    refused = cli("batch", folder, "--out", tmp_path / "grades.csv", env=no_jail)
    assert refused.returncode == 2 and "--no-jail" in refused.stderr, refused.stderr
    assert not (tmp_path / "grades.csv").exists()
    told = cli("batch", folder, "--out", tmp_path / "grades.csv", "--no-jail", env=no_jail)
    assert told.returncode == 0, told.stdout + told.stderr
    feedback = (tmp_path / "grades-feedback" / "alice.txt").read_text()
    assert "isolation: process only" in feedback


FORGED_FAILURES = {
    # the student's own exception named as the machine's failure
    "an exception named Starved": """
        class Starved(Exception):
            pass
        import autograder.lessons.mnist_dnn.probes as probes
        def fails(*args, **kwargs):
            raise Starved("my fit does not work")
        probes.PROBES["fit"] = fails
    """,
    # a probe that returns the clean child's "evaluation" record, marked as the grader's
    "a forged evaluation": """
        import autograder.lessons.mnist_dnn.probes as probes
        probes.PROBES["fit"] = lambda *a, **k: {"evaluation": {"ok": False, "seconds": 0.0,
            "error": {"type": "Lost", "origin": "grader", "message": "not mine"}}}
    """,
}


@pytest.mark.parametrize("forgery", list(FORGED_FAILURES))
def test_a_student_cannot_pass_their_failure_off_as_the_graders(tmp_path, forgery):
    """The grader's failures are never cached and never a zero: a student who could claim one
    would be "not graded" forever. Only what the sandbox saw itself counts as the grader's."""
    path = write(tmp_path, "claims.py", attack(FORGED_FAILURES[forgery]))
    report = grade(path, only="fit")  # graded, not GraderUnavailable
    assert not by_id(report)["fit_loss_decreases"].passed
    assert "machine" not in scorecard(report, student=True)


def bomb_frame(pickle_mb: int = 16) -> bytes:
    """A well-formed reply frame (stored, not compressed) whose pickle is `pickle_mb` MB of
    EMPTY_LIST opcodes: each byte builds a Python list in the process that unpickles it."""
    saved, rebuilt = io.BytesIO(), io.BytesIO()
    torch.save([1], saved)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(rebuilt, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename.endswith("data.pkl"):
                data = b"\x80\x02(" + b"]" * (pickle_mb << 20) + b"l."
            target.writestr(entry.filename, data)
    frame = rebuilt.getvalue()
    return wire.HEADER.pack(wire.MAGIC, len(frame)) + frame


def test_a_reply_cannot_inflate_in_the_graders_process():
    """Any child can write any bytes on its reply pipe. 16 MB of pickle opcodes (a quarter of
    the frame size allowed) grew the grader's own process, which every grading of a batch
    shares, by 1.6 GB before torch.load refused them (64 MB: 6 GB). The grader now refuses a
    pickle over wire.MAX_PICKLE before reading it: the probe then fails as "could not read the
    result" (see test_forged_frames_are_graded_not_crashes)."""
    frame, before = bomb_frame(), rss_mb()
    assert len(frame) < wire.MAX_FRAME
    reader = wire.FrameReader()
    reader.feed(frame)
    with pytest.raises(wire.MalformedFrame, match="too large"):
        reader.pop()
    assert rss_mb() - before < 200, f"the grader grew by {rss_mb() - before:.0f} MB"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
