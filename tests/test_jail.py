"""The jail (autograder/engine/jail.py) on its own: what a process inside sees and can do.

Each test runs a few lines of plain Python in a jail (no torch: ~0.1 s each) and checks the
outcome from outside. In CI the jail must exist: these tests fail there, not skip, without it.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from autograder.engine import jail as jails
from autograder.engine import zygote
from autograder.engine.wire import FrameReader
from autograder.lessons.common.datacache import split_files, verify

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def found(jail_isolation):
    return jail_isolation


@pytest.fixture(scope="module", params=["bwrap", "fork server"])
def runner(request):
    """Every test runs twice: in a bubblewrap jail, and in a child of the fork server
    (engine/zygote.py), which must give the same view and the same bounds."""
    if request.param == "bwrap":
        yield None
        return
    request.getfixturevalue("fork_server_here")
    server = zygote.Zygote("01_mnist_dnn")
    yield server
    server.close()


@pytest.fixture
def run_jailed(found, runner):
    """run(code, memory_mb=512, files=(), timeout=60, env=None): run `code` in a fresh jail;
    return (CompletedProcess, the jail)."""
    def run(code: str, memory_mb: int = 512, files=(), timeout=60, env=None):
        jail = jails.Jail(found, memory_mb, files=files, extra_env=env)
        try:
            if runner is None:
                done = subprocess.run(jail.command([sys.executable, "-c", textwrap.dedent(code)]),
                                      env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                                      text=True, timeout=timeout)
            else:
                done = run_forked(runner, jail, textwrap.dedent(code), timeout)
            return done, jail
        finally:
            jail.cpu_used = jail.cgroup.cpu_seconds() if jail.cgroup else None
            jail.destroy()

    return run


def run_forked(server, jail, code: str, timeout: float) -> subprocess.CompletedProcess:
    """`code` as the one statement of a submission defined by a child of the fork server
    (an error while defining it is the child's stderr and exit code 1, as `python -c`'s)."""
    folder = Path(tempfile.mkdtemp(prefix="zygote-test-"))
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"filename": "<test>", "statements": [
        {"lineno": 1, "source": code, "names": ["<code>"]}]}))
    jail.files += (folder,)
    jail.give(folder)
    req_r, req_w = os.pipe()
    res_r, res_w = os.pipe()
    proc = zygote.spawn_child(server, jail, "student", 0, req_r, res_w)
    os.close(req_r)
    os.close(res_w)
    load = {"kind": "load", "plan": str(plan), "probes": "autograder.lessons.mnist_dnn.probes"}
    os.write(req_w, (json.dumps(load) + "\n").encode())
    os.close(req_w)  # after defining the code, the child finds no request and ends
    reader, frames = FrameReader(), []
    end = time.monotonic() + timeout
    while len(frames) < 2 and time.monotonic() < end:
        data = os.read(res_r, 65536)
        if not data:
            break
        reader.feed(data)
        while (frame := reader.pop()) is not None:
            frames.append(frame)
    os.close(res_r)
    code = proc.wait(max(1.0, end - time.monotonic()))
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    errors = frames[1].get("errors") if len(frames) > 1 else None
    if errors:
        stderr, code = stderr + json.dumps(errors), code or 1
    shutil.rmtree(folder, ignore_errors=True)
    return subprocess.CompletedProcess("fork server", code, stdout, stderr)


def test_ci_has_a_jail():
    """The grader of CI must jail submissions; a missing bwrap is a failure there."""
    isolation = jails.isolation()
    if os.environ.get("CI"):
        assert isolation.jailed, isolation.reason
        assert isolation.cgroup, "CI runs as root on a machine with writable cgroups"
        assert isolation.cpu, "CI's cgroups must bound and count each jail's CPU"


def test_jail_sees_python_and_the_grader_only(run_jailed, found, tmp_path):
    secret = tmp_path / "classmate.py"
    secret.write_text("the classmate's answer")
    done, _ = run_jailed(f"""
        import os
        repo = {str(REPO)!r}
        print(sorted(os.listdir(repo)))
        for path in [{str(secret)!r}, repo + "/solutions/01_mnist_dnn.py", repo + "/data",
                     "/root/.bashrc", "/etc/passwd", "/home"]:
            print(path, os.path.exists(path))
        import autograder, shared
        print("imports ok")
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert set(eval(lines[0])) <= {".venv", "autograder", "shared"}, lines[0]
    assert all(line.endswith("False") for line in lines[1:7]), done.stdout
    assert "imports ok" in done.stdout


def test_jail_gets_the_training_split_only_and_read_only(run_jailed, found):
    files = split_files()
    done, _ = run_jailed(f"""
        import os
        train, test = {str(files["train"])!r}, {str(files["test"])!r}
        print(os.path.exists(train), os.path.exists(test))
        try:
            open(train, "r+b").write(b"x")
            print("wrote")
        except OSError as error:
            print("refused", error.errno)
    """, files=[files["train"]])
    assert done.stdout.split() [:2] == ["True", "False"], done.stdout + done.stderr
    assert "refused" in done.stdout
    assert verify(files["train"])


def test_environment_is_an_allow_list(run_jailed, found, monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_API_TOKEN", "s3cr3t-token")
    done, _ = run_jailed("import os; print(dict(os.environ))")
    assert "s3cr3t-token" not in done.stdout and "INSTRUCTOR_API_TOKEN" not in done.stdout
    assert set(eval(done.stdout)) <= set(jails.ENV) | {"PWD", "PYTHONPATH"}  # bwrap sets PWD


def test_no_network(run_jailed, found):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        done, _ = run_jailed(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as error:
                print("no network", error.errno)
        """)
    finally:
        server.close()
    assert "no network" in done.stdout, done.stdout + done.stderr


def test_own_uid_and_pid_namespace_cannot_reach_the_grader(run_jailed, found):
    done, jail = run_jailed(f"""
        import os, signal
        print(os.getuid(), os.getppid())
        try:
            os.kill({os.getpid()}, signal.SIGKILL)
            print("killed the grader?")
        except OSError as error:
            print("cannot", error.errno)
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
    """)
    uid, parent = map(int, done.stdout.split()[:2])
    if found.own_uid:
        assert uid == jail.uid and uid >= jails.UID_BASE
    assert parent <= 1  # bwrap's init is pid 1: nothing of the host is visible
    assert "killed the grader?" not in done.stdout
    assert max(eval(done.stdout.splitlines()[-1])) < 10


def test_nothing_survives_the_jail(run_jailed, found):
    """A grandchild in a session of its own, reparented (CLONE_PARENT-like), and a process
    that keeps forking and exiting: all gone with the jail."""
    done, jail = run_jailed("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    time.sleep(0.01)
            os._exit(0)
        time.sleep(0.5)
        print("parent leaves")
    """)
    assert "parent leaves" in done.stdout
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _uid(pid) == jail.uid]
    assert not left or not found.own_uid
    if jail.cgroup is not None:
        assert not jail.cgroup.dirs[0].exists()


def _uid(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_processes_are_bounded(run_jailed, found):
    done, _ = run_jailed("""
        import os, time
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
                n += 1
        except OSError as error:
            print("stopped at", n)
    """, memory_mb=4096)  # a fork server's child has torch imported: each fork costs more
    assert "stopped at" in done.stdout, done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) <= jails.PROCESSES


def test_a_jail_uses_at_most_one_core(run_jailed, found):
    """Five busy processes for 3 s: the jail's cgroup holds them to one core (3 s of CPU, not
    the 6 s two cores give), so a hostile submission leaves the machine's other cores to the
    classmates graded beside it; and the cgroup counts that time, which limits are judged by."""
    if not found.cpu:
        if os.environ.get("CI"):
            pytest.fail("CI's cgroups must bound each jail's CPU")
        pytest.skip("no writable cpu cgroup controller here")
    done, jail = run_jailed("""
        import os, time
        end = time.monotonic() + 3
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                while time.monotonic() < end:
                    pass
                os._exit(0)
            children.append(pid)
        while time.monotonic() < end:
            pass
        for pid in children:
            os.waitpid(pid, 0)
        print("done")
    """)
    assert "done" in done.stdout, done.stderr
    assert 0.5 < jail.cpu_used < 3.0 * 1.25, f"{jail.cpu_used:.1f} s of CPU in 3 s"


def test_shared_memory_counts_against_the_memory_bound(run_jailed, found):
    if not found.cgroup:
        pytest.skip("no writable cgroup here: shared memory is bounded by polling only")
    done, jail = run_jailed("""
        import mmap
        m = mmap.mmap(-1, 1500 * 2 ** 20, flags=mmap.MAP_SHARED)
        for i in range(0, len(m), 4096):
            m[i] = 1
        print("survived")
    """, memory_mb=300)
    assert "survived" not in done.stdout
    assert done.returncode != 0


def test_tmp_and_shm_are_private_and_capped(run_jailed, found):
    before = {where: set(os.listdir(where)) for where in ("/tmp", "/dev/shm")}
    done, _ = run_jailed("""
        import os
        for where in ("/tmp", "/dev/shm"):
            written = 0
            try:
                with open(f"{where}/fill", "wb") as f:
                    while written < 2 ** 31:
                        f.write(b"x" * 2 ** 20)
                        written += 2 ** 20
            except OSError as error:
                pass
            print(where, written // 2 ** 20)
            os.remove(f"{where}/fill")
    """, memory_mb=2048)
    sizes = dict(line.split() for line in done.stdout.splitlines())
    assert int(sizes["/tmp"]) <= jails.TMP_MB and int(sizes["/dev/shm"]) <= jails.SHM_MB, sizes
    for where, names in before.items():
        assert "fill" not in set(os.listdir(where)) - names


def test_a_data_file_that_fails_verification_is_rebuilt(tmp_path, monkeypatch):
    """Tampering with the jail's data (e.g. a write through a writable mapping, as a jail could
    do to the old shared cache in /tmp) is caught before the next use, and the file rebuilt."""
    import shutil

    import torch

    from shared import data

    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data.raw_dir(), raw)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    train = split_files(("train",))["train"]
    assert train.parent == tmp_path / "MNIST" / "cache" and verify(train)
    expected = torch.load(train, weights_only=True)["x_train"][:5].clone()
    with open(train, "r+b") as f:  # flip bytes in the middle of the tensor data
        f.seek(train.stat().st_size // 2)
        f.write(b"\xff" * 4096)
    assert not verify(train)
    assert split_files(("train",))["train"] == train and verify(train)
    assert torch.equal(torch.load(train, weights_only=True)["x_train"][:5], expected)


def test_a_child_that_cannot_start_is_the_graders_failure_not_the_students():
    """A jailed child that dies or stalls before it is told its plan ran no student code: the
    submission is not graded (before: 0/25, "do not call exit()", blamed on the student)."""
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import Limits, SandboxError

    reference = REPO / "tests" / "submissions" / "reference_min.py"
    with pytest.raises(SandboxError, match="before any student code ran"):
        grade(reference, only="accuracy", limits=Limits(startup_s=0.01))
