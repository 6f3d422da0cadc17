"""A fork server: torch imported once, then one fresh jail per child, forked in milliseconds.

Every child that grades a submission spends ~3 s of CPU before it can do anything: importing
torch (1.7 s), torch._dynamo (1.0 s) and tracing a first program (0.6 s). On a 2-core machine
that is half of what a lesson-01 submission costs, and starting children ahead of need (`warm`)
only moves that CPU, it does not remove it. The fork server pays it once:

    grader ──spawn──> zygote (the grader's code only; torch, dynamo and the probes imported)
                        │ fork, per child, on request over a private socket
                        ▼
                      keeper (root, the grader's code only: joins the child's cgroup,
                        │      unshares mount, PID, network, IPC, UTS and cgroup namespaces)
                        │ fork
                        ▼
                      init = PID 1 of its own namespaces (root, the grader's code only):
                        │    builds the jail's own filesystem (`Jail.layout`, the same list
                        │    bubblewrap builds) and pivots into it; then only reaps
                        │ fork
                        ▼
                      worker = PID 2: drops to the jail's uid (no capabilities, no_new_privs),
                              runs `worker.submission` — and only then the student's code.
                              Whatever it does, it dies with the init, which dies with the
                              keeper, which dies with the zygote, which dies with the grader.

What a forked child is given is what a bubblewrap jail is given (see `jail`): its own uid, PID,
network (loopback only), IPC, UTS and cgroup namespaces, a read-only view of the system, Python
and the grader, the files it is handed, private /tmp and /dev/shm, its own memory + pids cgroup,
an environment from the allow-list. The zygote itself never runs student code and holds nothing
a student may not see: it was started with the allow-listed environment, it reads no data file,
and a child closes every descriptor but its own four before it drops its privileges. A child
serves one submission and is gone with it; nothing is reused but what was imported before any
student code ran (copy-on-write: a child's writes are its own).

Where it runs: as root, on Linux x86_64 or aarch64, with a writable cgroup (v1 or v2) — the
cgroup is what bounds a child's memory and processes, since all children of one zygote would
otherwise share RLIMIT_NPROC. Elsewhere `unsupported()` says why, and the caller starts one
bubblewrap jail per child as before (`warm.Warm`).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

from autograder.engine import jail as jails
from autograder.engine.lesson import resolve

PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}  # syscall numbers: glibc has no wrapper
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x20000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 24, 36, 38
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
MESSAGE = 1 << 20  # the largest request (a child's spec) or reply, in bytes
FDS = 4            # per child: its request pipe, its result pipe, its stdout, its stderr


def unsupported(found: jails.Isolation | None = None) -> str:
    """"" where the fork server can give its children a full jail, else why not."""
    found = found or jails.isolation()
    if not found.jailed:
        return f"no jail here ({found.reason})"
    if not found.own_uid:
        return "the grader is not root, so it cannot give each child a uid of its own"
    if not found.cgroup:
        return "no writable cgroup to bound each child's memory and processes"
    if platform.machine() not in PIVOT_ROOT:
        return f"no pivot_root system call number known for {platform.machine()}"
    return ""


# =========================================================================== grader side

class Forked:
    """A child of the fork server, as `Sandbox` sees a child process (pid, poll, wait and its
    stdout/stderr). Its pid is the keeper's: killing it, or its process group, ends the child,
    and its exit code is what bubblewrap's would be (128 + signal for a killed child)."""

    def __init__(self, server: "Zygote", pid: int, stdout, stderr):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.wait_exit(self.pid, timeout)
        return self.returncode


class Zygote:
    """The grader's handle on one fork server. `fork` may be called from any thread."""

    def __init__(self, lesson, startup_s: float = 90.0):
        self.lesson = resolve(lesson)
        self.lock, self.changed = threading.Lock(), threading.Condition()
        self.forked: queue.Queue = queue.Queue()
        self.exits: dict[int, int] = {}
        self.dead = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        env = {**jails.ENV, "PYTHONPATH": str(jails.package_root())}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.engine.zygote", str(theirs.fileno()),
             self.lesson.probes, str(os.getpid())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, cwd="/", env=env, start_new_session=True)
        theirs.close()
        self.stderr = _tail(self.proc.stderr)
        ready, _, _ = select.select([self.sock], [], [], startup_s)
        hello = self._receive() if ready else None
        if not hello or "started" not in hello:
            self.close()
            why = (hello or {}).get("error") or f"no word within {startup_s:.0f} s"
            raise OSError(f"the fork server did not start ({why}): "
                          f"{self.stderr.text()[-1500:]}")
        self.reader = threading.Thread(target=self._read_loop, daemon=True,
                                       name="autograder-zygote")
        self.reader.start()

    def fork(self, spec: dict, fds: list[int]) -> int:
        """Ask for one child: `spec` says its jail (see `Sandbox.spawn`), `fds` are its four
        descriptors (request, result, stdout, stderr). Returns the keeper's pid."""
        data = json.dumps(spec).encode()
        with self.lock:
            if self.dead:
                raise OSError(f"the fork server has died: {self.stderr.text()[-1500:]}")
            socket.send_fds(self.sock, [data], fds)
            try:
                reply = self.forked.get(timeout=30)
            except queue.Empty:  # a late answer would be the next request's: end it here
                self.dead = True
                self.proc.kill()
                raise OSError("the fork server did not answer within 30 s") from None
        if "error" in reply:
            raise OSError(f"the fork server could not fork: {reply['error']}")
        return reply["forked"]

    def exit_code(self, pid: int) -> int | None:
        with self.changed:
            return self.exits.pop(pid, -signal.SIGKILL if self.dead else None)

    def wait_exit(self, pid: int, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while pid not in self.exits and not self.dead:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired("fork server child", timeout)
                self.changed.wait(left)
            return self.exits.pop(pid, -signal.SIGKILL)

    def close(self) -> None:
        """End the fork server once it has ended its children (each keeper kills its child and
        reaps it, so that none is left for the machine's init to reap); kill it otherwise."""
        try:
            try:  # shutdown first: a close alone waits for the reader thread's recv to return
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()

    def _receive(self) -> dict | None:
        try:
            data = self.sock.recv(MESSAGE)
        except OSError:
            return None
        return json.loads(data) if data else None

    def _read_loop(self) -> None:
        while True:
            message = self._receive()
            if message is None:
                break
            if "exited" in message:
                with self.changed:
                    self.exits[message["exited"]] = message["code"]
                    self.changed.notify_all()
            else:
                self.forked.put(message)
        with self.changed:
            self.dead = True
            self.changed.notify_all()
        self.forked.put({"error": "the fork server has died"})


def _tail(stream):
    from autograder.engine.sandbox import Tail  # sandbox imports this module

    return Tail(stream)


def spawn_child(server: Zygote, jail: jails.Jail, role: str, data_mb: int,
                req_r: int, res_w: int) -> Forked:
    """Fork one jailed child running `worker.submission` (the zygote's side of `Sandbox.spawn`),
    with the jail's environment (`Jail.env`: the allow-list and what the caller added)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    spec = {"uid": jail.uid, "gid": jail.gid, "cwd": jail.cwd, "layout": jail.layout(),
            "cgroup": jail.cgroup.procs_files if jail.cgroup else [], "role": role,
            "env": jail.env(), "data_mb": data_mb}
    try:
        pid = server.fork(spec, [req_r, res_w, out_w, err_w])
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return Forked(server, pid, os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))


class Forks:
    """Children forked from one fork server, for any number of grading threads; the same
    interface as `warm.Warm`:

        with Forks(lesson, limits) as forks:
            grade(path, lesson, limits=limits, warm=forks)

    The server is started from a thread of its own that lives until `close` (a parent-death
    signal follows the thread that started the process, not the process)."""

    def __init__(self, lesson, limits=None):
        from autograder.engine.sandbox import Limits

        self.lesson, self.limits = resolve(lesson), limits or Limits()
        self.server: Zygote | None = None
        self.error: BaseException | None = None
        self.closed = False
        self._started, self._stop = threading.Event(), threading.Event()
        self.keeper = threading.Thread(target=self._keep, daemon=True,
                                       name="autograder-zygote-keeper")

    def __enter__(self):
        self.keeper.start()
        self._started.wait()
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc):
        self.close()

    @classmethod
    def start(cls, lesson, limits=None) -> "Forks | None":
        """A started fork server, or None (each child then starts in bubblewrap) where it
        cannot start; the reason is printed for the instructor."""
        try:
            return cls(lesson, limits).__enter__()
        except OSError as error:
            print(f"the fork server could not start ({error}): each child starts on its own",
                  file=sys.stderr)
            return None

    def _keep(self) -> None:
        try:
            self.server = Zygote(self.lesson, self.limits.startup_s)
        except BaseException as error:  # noqa: B036 -- reported to the thread that asked
            self.error = error
        self._started.set()
        self._stop.wait()
        if self.server is not None:
            self.server.close()

    def fits(self, lesson, limits) -> bool:
        return lesson.id == self.lesson.id and limits == self.limits and not self.closed

    def student(self, plan: dict):
        from autograder.engine.sandbox import Sandbox

        return Sandbox(plan, self.lesson, self.limits, zygote=self.server)

    def clean(self):
        from autograder.engine.sandbox import CLEAN_PLAN, Sandbox

        return Sandbox(CLEAN_PLAN, self.lesson, self.limits, zygote=self.server)

    def close(self) -> None:
        """End the fork server (children still running die with it): call it once no
        submission is being graded with it."""
        self.closed = True
        self._stop.set()
        if self.keeper.is_alive():
            self.keeper.join()


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def shared(lesson, limits) -> "Forks | None":
    """This process's fork server for `lesson` and `limits` (a Dask worker's: started by its
    first task, it lives as long as the worker), or None where none can run here."""
    lesson = resolve(lesson)
    with _SHARED_LOCK:
        key = (lesson.id, repr(limits))
        if key not in _SHARED:
            _SHARED[key] = None if unsupported() else Forks.start(lesson, limits)
        return _SHARED[key]


# =========================================================================== zygote side

LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda v: None if v is None else str(v).encode())
    _check(LIBC.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def _umount(target: str) -> None:
    _check(LIBC.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _pivot_root(new: str, old: str) -> None:
    _check(LIBC.syscall(PIVOT_ROOT[platform.machine()], new.encode(), old.encode()),
           f"pivot_root {new}")


def _prctl(option: int, value: int) -> None:
    _check(LIBC.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def warm_up_export(torch) -> None:
    """Trace a first program with the grader's exporter (its first use costs ~0.6 s)."""
    from autograder.lessons.common import graphs

    try:  # tracing shows a progress bar: no monitor thread (fork() would not copy it), and a
        import tqdm  # lock of this process only, not its default cross-process semaphore, a
                     # page of /dev/shm every forked child would share (and could hold forever)
        tqdm.tqdm.monitor_interval = 0
        tqdm.tqdm.set_lock(threading.RLock())
    except ImportError:
        pass

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU())
    graphs.export(model, torch.zeros(2, 4))


def writable_shared_mappings(pid: str = "self") -> list[str]:
    """The mappings of a process that are both writable and shared (/proc/PID/maps "rw-s"): a
    forked child would share them with its siblings, so a child of one submission could change
    what another's sees (a lock it never releases, say). The zygote and each child hold none."""
    found = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1][1] == "w" and fields[1][3] == "s":
                found.append(" ".join(fields[5:]) or fields[0])
    return found


def zygote_main(sock_fd: int, probes: str, grader_pid: int) -> int:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader gone, the zygote and all it forked go
    if os.getppid() != grader_pid:
        return 1
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # a child whose keeper was killed first is reaped here
    import importlib

    import torch

    from autograder.engine import worker

    worker.prepare(torch, "student")
    warm_up_export(torch)
    importlib.import_module(probes)
    sock = socket.socket(fileno=sock_fd)
    threads = len(os.listdir("/proc/self/task"))
    shared = writable_shared_mappings()
    if threads != 1 or shared:  # fork() copies one thread: a lock held by another would never
        why = (f"{threads} threads in the zygote" if threads != 1 else  # be freed; a shared page
               f"it maps writable shared memory every child would share: {shared[:3]}")
        sock.send(json.dumps({"error": why}).encode())
        return 1
    sock.send(json.dumps({"started": True}).encode())
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)  # a child's exit wakes the loop at once
    signal.signal(signal.SIGCHLD, lambda *_: None)
    keepers = set()  # the pids the grader knows (the children they fork are reaped silently)
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [], 5.0)
        if wake_r in readable:
            _drain(wake_r)
        _reap(sock, keepers)
        if sock not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, MESSAGE, FDS)
        except OSError:
            data = b""
        if not data:  # the grader closed its end
            return _end_keepers(keepers)
        reply = _fork(sock, json.loads(data), fds, (wake_r, wake_w))
        for fd in fds:
            os.close(fd)
        keepers.add(reply.get("forked"))
        sock.send(json.dumps(reply).encode())


def _end_keepers(keepers: set) -> int:
    """Ask each keeper to end its child (SIGTERM: it kills and reaps its child, then exits)."""
    for pid in keepers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while keepers and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
        keepers.discard(pid)
    return 0


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(sock, keepers: set) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in keepers:
            continue
        keepers.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        sock.send(json.dumps({"exited": pid, "code": code}).encode())


def _fork(sock, spec: dict, fds: list[int], wake: tuple[int, int]) -> dict:
    if len(fds) != FDS:
        return {"error": f"{len(fds)} descriptors instead of {FDS}"}
    try:
        pid = os.fork()
    except OSError as error:
        return {"error": str(error)}
    if pid == 0:
        code = 127
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            for fd in wake:
                os.close(fd)
            code = _keeper(spec, fds)
        except BaseException:  # noqa: B036 -- nothing may return into the zygote's loop
            _report(fds[3])
        os._exit(code)
    return {"forked": pid}


def _report(fd: int) -> None:
    try:
        os.write(fd, f"fork server: could not jail this child:\n{traceback.format_exc()}"
                 .encode())
    except OSError:
        pass


def _keeper(spec: dict, fds: list[int]) -> int:
    """Root, still in the host's namespaces: join the child's cgroup, make its namespaces,
    fork it as their PID 1 and wait for it; exit as bubblewrap would (128 + signal)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()
    for path in spec["cgroup"]:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    _check(LIBC.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
                        | CLONE_NEWUTS | CLONE_NEWCGROUP), "unshare")
    child = []
    signal.signal(signal.SIGTERM, lambda *_: child and os.kill(child[0], signal.SIGKILL))
    lifeline, held = os.pipe()  # the keeper holds `held` open until it dies
    pid = os.fork()
    if pid == 0:
        code = 126
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            code = _child(spec, fds + [lifeline])
        except BaseException:  # noqa: B036
            _report(fds[3])
        sys.stdout.flush()
        os._exit(code)
    child.append(pid)
    for fd in fds + [lifeline]:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _child(spec: dict, fds: list[int]) -> int:
    """PID 1 of the child's own namespaces, its init (as bubblewrap's): it builds the jail's
    filesystem and descriptors, forks the worker (PID 2), which drops to the jail's uid and runs
    the submission, then only reaps and exits with the worker's status. The init keeps its
    parent-death signal and never runs student code, so the student cannot clear it: when the
    keeper dies, the init dies, and with PID 1 every process of the namespace."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()  # a session of its own, as bubblewrap's --new-session
    _build_root(spec["layout"])
    _loopback_up()
    req, res, lifeline = _own_descriptors(fds)
    _outlive_nobody(lifeline)  # the keeper died before our parent-death signal was set
    pid = os.fork()
    if pid == 0:
        code = 126
        try:
            code = _worker(spec, req, res)
        except BaseException:  # noqa: B036 -- nothing may return into the init's loop
            _report(2)
        sys.stdout.flush()
        os._exit(code)
    for fd in range(5):  # the grader reads the worker's end of each pipe, never the init's
        os.close(fd)
    return _reap_until(pid)


def _reap_until(worker: int) -> int:
    """Reap every process of the namespace until the worker ends; exit as it did."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 126
        if pid == worker:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                os.WEXITSTATUS(status)


def _worker(spec: dict, req: int, res: int) -> int:
    """PID 2: the jail's uid, then the submission (the student's code runs in
    `worker.submission`, never before)."""
    os.setsid()
    _drop_privileges(spec["uid"], spec["gid"])
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # changing the uid cleared it (the init's stays)
    shared = writable_shared_mappings()
    if shared:
        raise PermissionError(f"writable shared memory inherited from the zygote: {shared[:3]}")
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    from autograder.engine import worker

    sys.argv = [worker.__file__, str(req), str(res), spec["role"], str(spec["data_mb"])]
    worker.limit_resources(int(spec["data_mb"]))
    import faulthandler

    faulthandler.enable()
    return worker.submission(req, res, spec["role"])


def _build_root(layout: list) -> None:
    """bubblewrap's way: a tmpfs root, the old root under /oldroot to bind from, the jail's
    view built in /newroot, the old root detached, then /newroot pivoted to and made
    read-only (its /tmp, /dev/shm and "rw" binds stay writable)."""
    layout = [(kind, path, *rest, os.path.realpath(path)) if kind in ("ro", "rw")
              else (kind, path, *rest) for kind, path, *rest in layout]  # links: host's view
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    os.mkdir("/tmp/newroot", 0o755)
    os.mkdir("/tmp/oldroot", 0o755)
    _pivot_root("/tmp", "/tmp/oldroot")
    os.chdir("/")
    _mount("/newroot", "/newroot", None, MS_BIND | MS_REC)
    for kind, path, *rest in layout:
        _step(kind, path, rest)
    _umount("/oldroot")
    os.chdir("/newroot")
    _pivot_root(".", ".")
    _umount(".")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _step(kind: str, path: str, rest: list) -> None:
    new = "/newroot" + (rest[0] if kind == "symlink" else path)
    if kind == "symlink":
        os.makedirs(os.path.dirname(new), 0o755, exist_ok=True)
        os.symlink(path, new)
    elif kind == "dir":
        os.makedirs(new, 0o755, exist_ok=True)
        os.chmod(new, 0o755)
    elif kind in ("ro", "rw"):
        _bind("/oldroot" + rest[0], new, read_only=kind == "ro")  # rest: its real path
    elif kind == "tmpfs":
        os.makedirs(new, 0o755, exist_ok=True)
        _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV,
               f"mode=1777,size={int(rest[0]) * 2 ** 20}")
    elif kind == "proc":
        os.makedirs(new, 0o755, exist_ok=True)
        _mount("proc", new, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for covered in ("sys", "sysrq-trigger", "irq", "bus"):  # as bubblewrap does
            if os.path.exists(f"{new}/{covered}"):
                _bind(f"{new}/{covered}", f"{new}/{covered}", read_only=True)
    elif kind == "dev":
        _make_dev(new)
    else:
        raise ValueError(f"unknown layout step {kind!r}")


def _bind(source: str, target: str, read_only: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()
    _mount(source, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    _mount(None, target, None, flags)


def _make_dev(new: str) -> None:
    """A minimal /dev, as bubblewrap's --dev: a few device nodes and the usual links."""
    os.makedirs(new, 0o755, exist_ok=True)
    _mount("tmpfs", new, "tmpfs", MS_NOSUID, "mode=0755,size=1m")
    for name in DEVICES:
        if os.path.exists(f"/oldroot/dev/{name}"):
            open(f"{new}/{name}", "a").close()
            _mount(f"/oldroot/dev/{name}", f"{new}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/{name}")
    os.mkdir(f"{new}/shm", 0o755)


def _loopback_up() -> None:
    """Its own network namespace has only `lo`, down: bring it up, as bubblewrap does."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _outlive_nobody(lifeline: int) -> None:
    """The parent-death signal set after the keeper may have died already: then go too (the
    keeper's end of the lifeline is closed: it reads as ready, end of file)."""
    ready, _, _ = select.select([lifeline], [], [], 0)
    os.close(lifeline)
    if ready:
        os._exit(125)


def _own_descriptors(fds: list[int]) -> tuple[int, int, int]:
    """stdin from /dev/null, stdout and stderr to the grader's pipes, the request and result
    pipes as 3 and 4, the keeper's lifeline as 5; every other descriptor the zygote had is
    closed."""
    req, res, out, err, life = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
    null = os.open("/dev/null", os.O_RDONLY)
    for fd, to in ((null, 0), (out, 1), (err, 2), (req, 3), (res, 4), (life, 5)):
        os.dup2(fd, to)
    fds[3] = 2  # where a failure from here on is reported
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) > 5:
            try:
                os.close(int(fd))
            except OSError as error:
                if error.errno != errno.EBADF:
                    raise
    for fd in (3, 4, 5):
        os.set_inheritable(fd, False)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return 3, 4, 5


def _drop_privileges(uid: int, gid: int) -> None:
    """From root to the jail's own uid: no capabilities (the bounding set emptied too), no
    supplementary groups, no_new_privs. Checked: a child that kept any capability is refused."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    held = [name for name in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")
            if int(status.get(name, "0").strip() or "0", 16)]
    if held or os.getuid() != uid or os.getgid() != gid:
        raise PermissionError(f"privileges not dropped: {held or 'uid/gid'}")


if __name__ == "__main__":
    sys.exit(zygote_main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
