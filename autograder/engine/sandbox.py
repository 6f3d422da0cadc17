"""Run probes on a submission in a jailed child process, with time and memory limits.

One child serves all probes of a submission (importing torch costs seconds); a probe that
times out, exhausts memory or kills the process fails alone, and the next probe gets a fresh
child, as long as the submission's wall-clock budget lasts (`Limits.budget_s`): past it, the
submission is graded on what finished. The child's stdout/stderr are drained into small buffers
and never parsed: results come back only on a private pipe, as frames the grader validates
(see `wire`). The grader never waits on the child without a bound: requests are written without
blocking, replies read with a deadline.

Each child runs in a jail of its own (see `jail`): its own uid, PID namespace and cgroup, no
network, a read-only view of Python, the grader's packages and the data it is given (the
student's child: the training split only). Where no jail can run, the child is a plain process
(`isolation().mode == "process"`): no process the student starts outlives it still (the child
is the subreaper of its tree, each sandbox tags its processes' environment with a token, and
closing stops then kills the tree and every tagged process), but it sees what your user sees.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.engine import jail as jails
from autograder.engine.clock import WALL_FACTOR, WALL_SLACK, Clock, Step
from autograder.engine import leftovers
from autograder.engine import zygote as zygotes
from autograder.engine.lesson import DATA_ENV, resolve
from autograder.engine.wire import FrameReader, MalformedFrame

REPO = Path(__file__).resolve().parents[2]
MARKER = "MNIST_GRADER_SANDBOX"  # env var naming the sandbox a process belongs to
CLEAN_PLAN = {"statements": [], "filename": "<grader>", "clean": True}  # runs no student code


class SandboxError(RuntimeError):
    """The grader's own child failed before running any student code: not the student's fault,
    so the submission is not graded (the CLI's exit 2, a batch row's error)."""


class GraderUnavailable(SandboxError):
    """The grader or the machine could not grade this submission, even when tried again: its
    sandbox would not start, or the machine was too busy to give a step the time the student's
    code is allowed. Never the student's fault, never cached: front ends show the message
    ("not graded: ...") and count it apart from zeros."""


@dataclass
class Limits:
    """A submission's limits. Seconds are the child's own time (see `clock`): what the work
    would take on a quiet machine, however busy this one is."""
    time_s: float = 20.0      # per probe (see the lesson's TIME_FACTOR)
    memory_mb: int = 4096     # the jail's memory: its processes, shared memory, /tmp, page cache
    startup_s: float = 90.0   # importing torch (the grader's CPU), then defining the submission
    budget_s: float = 120.0   # one submission's loading and probes; then graded on what finished
    require_jail: bool = False  # other people's code: refuse (jail.NoJail) where no jail runs
    cpu_cores: float = jails.CPU_CORES  # the jail's CPU, where a cgroup bounds it
    wall_factor: float = WALL_FACTOR  # a step past this × its limit, wall-clock, + wall_slack
    wall_slack: float = WALL_SLACK    # seconds, was starved by the machine: graded again


class Tail:
    """Drain a stream in a thread, keeping only its last `keep` bytes (flood-proof)."""

    def __init__(self, stream, keep: int = 8192):
        self.keep, self.data, self.total = keep, b"", 0
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream):
        try:
            for chunk in iter(lambda: stream.read1(65536), b""):
                self.total += len(chunk)
                self.data = (self.data + chunk)[-self.keep:]
        except (OSError, ValueError):  # the grader closed the pipe: nothing more to keep
            pass

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class Sandbox:
    """The child (jailed where possible) that runs one submission's probes, or none of its
    code at all with CLEAN_PLAN. Files handed to it go in `workdir`, which it can read."""

    def __init__(self, plan: dict | None, lesson, limits: Limits | None = None,
                 zygote=None):
        """`plan` None: a student's jail started ahead of need, told its plan by `assign`.
        `zygote` (a `zygote.Zygote`): its children are forked from that fork server, each in a
        jail of its own, instead of each starting Python and torch anew in bubblewrap."""
        self.lesson, self.limits = resolve(lesson), limits or Limits()
        self.zygote = zygote
        self.role = "clean" if (plan or {}).get("clean") else "student"
        self.isolation = jails.require(untrusted_ok=not self.limits.require_jail)
        self.workdir = leftovers.private_dir("sandbox")  # a killed grader's: swept later
        self.plan_path = self.workdir / "plan.json"
        if plan is not None:
            self.plan_path.write_text(json.dumps(plan))
        self.proc = self.jail = None
        self.req = self.res = None
        self.token = secrets.token_hex(8)
        self.start_error = None   # a child that cannot even start: every probe fails with it
        self.define_errors = {}
        self.begin()

    def begin(self) -> None:
        """Start the submission's account: its budget counts the child's own time from now."""
        self.startup_seconds = 0.0  # waiting for children to import torch and define the file
        self.used = 0.0  # own seconds (see `clock`) the child spent on this submission

    def assign(self, plan: dict) -> None:
        """Hand a jail started ahead of need (plan None) its submission; its clock starts now."""
        self.plan_path.write_text(json.dumps(plan))
        self.begin()

    def __enter__(self):
        if self.proc is None:  # else started ahead of need (see `warm`)
            self.spawn()
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ child lifecycle

    def spawn(self) -> None:
        data = [str(p) for p in self.lesson.data(self.role)]  # the lesson's files, verified
        req_r, self.req = os.pipe()
        self.res, res_w = os.pipe()
        os.set_blocking(self.req, False)  # a child that fills its own request pipe can't block us
        argv = [sys.executable, "-m", "autograder.engine.worker", str(req_r), str(res_w), self.role]
        env = {DATA_ENV: os.pathsep.join(data)}
        if self.isolation.jailed:
            self.jail = jails.Jail(self.isolation, self.limits.memory_mb,
                                   files=[*data, self.workdir], extra_env=env,
                                   cpu_cores=self.limits.cpu_cores)
            self.jail.give(self.workdir)
            data_mb = 0 if self.jail.cgroup else self._data_limit(data)
            cmd, env = self.jail.command(argv + [str(data_mb)]), {"PATH": jails.ENV["PATH"]}
        else:
            cmd, env = argv + [str(self._data_limit(data))], {**self._process_env(), **env}
        try:
            self.proc = None
            if self.zygote is not None and self.jail is not None:
                try:
                    self.proc = zygotes.spawn_child(self.zygote, self.jail, self.role, data_mb,
                                                    req_r, res_w)
                except OSError:  # the fork server is gone: this child starts as it would
                    self.zygote = None  # without one (the grader's trouble, not the student's)
            if self.proc is None:
                self.proc = subprocess.Popen(cmd, pass_fds=(req_r, res_w),
                                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, cwd=self.workdir, env=env,
                                             start_new_session=True)
        finally:
            os.close(req_r)
            os.close(res_w)
        self.reader = FrameReader()
        self.tails = (Tail(self.proc.stdout), Tail(self.proc.stderr))
        self.ready = self.started = False
        self.spawned_at = time.monotonic()
        self.clock = Clock(self.proc.pid, self.jail.cgroup if self.jail else None)
        self.oom_kills = jails.oom_kills()

    def _data_limit(self, data: list[str]) -> int:
        """RLIMIT_DATA counts the data files' private mappings: the limit plus their size."""
        return self.limits.memory_mb + sum(os.path.getsize(p) for p in data) // 2 ** 20 + 1

    def _process_env(self) -> dict:
        """No jail: the allow-listed environment, in the sandbox's own folder, tagged."""
        home = str(self.workdir)
        return {**jails.ENV, "HOME": home, "TMPDIR": home, "MPLCONFIGDIR": f"{home}/mpl",
                "TORCHINDUCTOR_CACHE_DIR": f"{home}/inductor", "TRITON_CACHE_DIR": f"{home}/tr",
                "PYTHONPATH": str(REPO), MARKER: self.token}

    def prestart(self, load: bool = False) -> None:
        """Spawn the child and wait for its "started" frame (torch imported, no plan read yet),
        and with `load` (its plan is known: the clean child's) until it is ready: SandboxError
        if it cannot. Used to start a child ahead of need (see `warm`)."""
        self.spawn()
        reply = self._started()
        if "error" in reply:
            self._fail_to_start(reply)
        if load and self._wait_ready():
            raise SandboxError(f"the grader's sandbox could not load: {self.start_error}")

    def waiting(self) -> bool:
        """Started, still alive, and nothing unexpected on its channel: fit to be handed a plan."""
        if self.proc is None or not self.started or self.proc.poll() is not None:
            return False
        readable, _, _ = select.select([self.res], [], [], 0)
        return not readable and not self.reader.buffer

    def _started(self) -> dict:
        """Wait for the child's "started" frame. Only the grader's code runs until then, so its
        CPU (not the wall clock, which load stretches) is what `startup_s` bounds; the worker
        found then is the process whose run-queue delay the clock subtracts."""
        step = self._step(self.limits.startup_s, "starting the sandbox", charged=False)
        reply = self._receive(step)
        if "error" not in reply and reply["value"] != {"kind": "started"}:
            reply = {"error": {"type": "Malformed", "message": "unexpected start-up frame"}}
        self.started = "error" not in reply
        if self.started:
            self.clock.attach()
        return reply

    def _fail_to_start(self, reply: dict):
        self._kill()
        raise SandboxError(f"the grader's sandbox could not start ({reply['error']}), "
                           f"before any student code ran: {self.tails[1].text()[-1500:]}")

    def _step(self, limit: float, what: str, charged: bool = True) -> Step:
        """A wait of at most `limit` own seconds, or what the submission's budget leaves (a
        `charged` step: the submission's loading and probes, not the grader's start-up)."""
        left = self.limits.budget_s - self.used
        over = "Budget" if charged and left < limit else "Timeout"
        return Step(self.clock, min(limit, left) if charged else limit, over, what,
                    self.limits.wall_factor, self.limits.wall_slack)

    def _charge(self, step: Step) -> None:
        self.used += step.spent()[0]

    def _wait_ready(self) -> dict | None:
        """Hand the started child its plan and wait until it has defined the submission.
        A child that fails before it is told its plan ran no student code: SandboxError."""
        waiting = time.monotonic()
        reply = {} if self.started else self._started()
        if "error" in reply:
            self._fail_to_start(reply)
        step = self._step(self.limits.startup_s, "loading your file")
        load = {"kind": "load", "plan": str(self.plan_path), "probes": self.lesson.probes}
        reply = self._send(json.dumps(load) + "\n", step)
        if "error" not in reply:
            reply = _ready(self._receive(step))
        self._charge(step)
        self.startup_seconds += time.monotonic() - waiting  # a child started early costs less
        if "error" in reply:
            if reply["error"]["type"] == "Budget":
                reply["error"]["limit"] = self.limits.budget_s
            self.start_error = dict(reply["error"], phase="loading", origin=GRADER)
            self._kill()
            return self.start_error
        self.define_errors, self.ready = reply["value"]["errors"], True
        return None

    def close(self) -> None:
        """Results are in: end the child and all it started (the tree goes while it is whole)."""
        if self.proc is not None:
            self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self) -> None:
        """End the child and anything it started; release its pipes."""
        if self.jail is not None:  # the jail's PID namespace dies with its first process
            _signal(-self.proc.pid, signal.SIGKILL)
            _signal(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.jail.destroy()
        else:
            end_processes(self.proc.pid, self.token)
            self.proc.wait()
        for tail, stream in zip(self.tails, (self.proc.stdout, self.proc.stderr)):
            tail.thread.join(timeout=1)
            if not tail.thread.is_alive():  # else a process that left the group still writes
                stream.close()
        for fd in (self.req, self.res):
            if fd is not None:
                os.close(fd)
        self.proc = self.req = self.res = None

    # ------------------------------------------------------------------ probes

    def run(self, probe: str, timeout: float, seed: int = 0, args: dict | None = None) -> dict:
        """{"ok": True, "data": ...} or {"ok": False, "error": {...}}, plus "seconds" (its own
        time, see `clock`). `args` (plain JSON) are passed to the probe as keyword arguments."""
        if self.start_error:
            return {"ok": False, "error": self.start_error, "seconds": 0.0}
        if self.used >= self.limits.budget_s:
            return {"ok": False, "seconds": 0.0,
                    "error": {"type": "Budget", "limit": self.limits.budget_s}}
        if self.proc is None:
            self.spawn()
        if not self.ready and self._wait_ready():
            return {"ok": False, "error": self.start_error, "seconds": 0.0}
        step = self._step(timeout, self.lesson.what.get(probe, probe))
        nonce = secrets.token_hex(8)
        request = json.dumps({"probe": probe, "nonce": nonce, "seed": seed,
                              "args": args or {}}) + "\n"
        reply = self._send(request, step)
        if "error" not in reply:
            reply = self._receive(step)
        self._charge(step)
        if "error" in reply and reply["error"]["type"] == "Budget":
            reply["error"]["limit"] = self.limits.budget_s
        outcome = _check_reply(reply, nonce)
        if not outcome["ok"] and outcome["error"]["type"] in _FATAL:
            self._kill()
            outcome["error"]["stderr_tail"] = self.tails[1].text()[-4000:]  # for instructors
        outcome["seconds"] = step.spent()[0]  # measured here, not reported by the child
        return outcome

    def _send(self, text: str, step: Step) -> dict:
        """Write a request without ever blocking past the step: {} or {"error": record}."""
        data = memoryview(text.encode())
        while data:
            expired = step.expired()
            if expired:
                return {"error": expired}
            _, writable, _ = select.select([], [self.req], [], POLL_S)
            if not writable:
                continue
            try:
                data = data[os.write(self.req, data):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                return {"error": self._death()}
        return {}

    def _receive(self, step: Step) -> dict:
        """The next frame as {"value": obj}, or {"error": record} when the step is over, or
        on memory/death. What the child has written is read before the clock is asked: a reply
        the grader was too busy to read in time is still on time."""
        while True:
            readable, _, _ = select.select([self.res], [], [], 0 if self.reader.buffer
                                           else POLL_S)
            if readable:
                try:
                    data = os.read(self.res, 2 ** 20)
                except OSError as error:
                    data = None if error.errno == errno.EAGAIN else b""
                if data == b"":
                    return {"error": self._death()}
                self.reader.feed(data or b"")
            try:
                frame = self.reader.pop()
            except MalformedFrame as error:
                return {"error": {"type": "Malformed", "message": str(error)}}
            if frame is not None:
                return {"value": frame}
            if self._over_memory():
                return {"error": {"type": "MemoryLimit", "limit": self.limits.memory_mb}}
            expired = step.expired()
            if expired:
                return {"error": expired}
            if self.reader.buffer and not readable:  # a partial frame: wait for the rest
                select.select([self.res], [], [], POLL_S)

    def _over_memory(self) -> bool:
        if self.jail is not None and self.jail.cgroup is not None:
            return self.jail.memory_exceeded()  # the kernel enforces it; we only notice
        return tree_mb(self.proc.pid) > self.limits.memory_mb

    def _death(self) -> dict:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return {"type": "Malformed", "message": "the channel closed early"}
        if self.jail is not None and self.jail.memory_exceeded():
            return {"type": "MemoryLimit", "limit": self.limits.memory_mb}
        if self.zygote is not None and self.zygote.dead:
            return {"type": "Lost", "message": "the grader's fork server died"}
        killed = code in (-signal.SIGKILL, 128 + signal.SIGKILL)
        if killed and jails.oom_kills() > self.oom_kills:  # the machine's, not the jail's bound
            return {"type": "Lost", "message": "the machine ran out of memory (the kernel's "
                                               "out-of-memory killer ended a process)"}
        if self.jail is not None and code > 128:  # bwrap exits 128 + the child's signal
            code = -(code - 128)
        if code < 0:
            try:
                return {"type": "Crash", "signal": signal.Signals(-code).name}
            except ValueError:
                return {"type": "Crash", "signal": f"signal {-code}"}
        return {"type": "Exit", "code": code}


_FATAL = ("Timeout", "MemoryLimit", "Crash", "Exit", "Malformed", "Budget", "Starved", "Lost")
GRADER = "grader"  # an error record's origin when the sandbox saw it, not the child's claim
# The machine's failures, not the submission's: a step starved of CPU, a child the grader lost
# (its fork server died, or the kernel's out-of-memory killer took it for the machine's sake)
GRADER_FAILURES = ("Starved", "Lost")
POLL_S = 0.1  # how often a wait looks at the child's clock and memory


def _ready(reply: dict) -> dict:
    """A "ready" frame is {"kind": "ready", "errors": {name: error record}}; anything else is
    a forgery or a broken child, and fails the start-up."""
    if "error" in reply:
        return reply
    frame = reply["value"]
    errors = frame.get("errors") if isinstance(frame, dict) else None
    if (not isinstance(frame, dict) or frame.get("kind") != "ready"
            or not isinstance(errors, dict)
            or not all(isinstance(k, str) and isinstance(v, dict)
                       and isinstance(v.get("type"), str) for k, v in errors.items())):
        return {"error": {"type": "Malformed", "message": "unexpected ready frame"}}
    return reply


def _check_reply(reply: dict, nonce: str) -> dict:
    """Only a well-formed reply to this very request counts. An error the sandbox saw itself
    is marked as the grader's (`GRADER`); an error the child reports is the child's claim,
    whatever its type says (a student's `class Starved(Exception)` is not the machine's)."""
    if "error" in reply:
        return {"ok": False, "error": dict(reply["error"], origin=GRADER)}
    frame = reply["value"]
    outcome = frame.get("outcome") if isinstance(frame, dict) else None
    valid = (isinstance(outcome, dict) and frame.get("nonce") == nonce
             and isinstance(outcome.get("ok"), bool)
             and ("data" in outcome if outcome["ok"]
                  else isinstance(outcome.get("error"), dict)
                  and isinstance(outcome["error"].get("type"), str)))
    if not valid:
        return {"ok": False, "error": {"type": "Malformed", "message": "unexpected reply",
                                       "origin": GRADER}}
    checked = {key: outcome[key] for key in ("ok", "data", "error") if key in outcome}
    if not checked["ok"]:
        checked["error"] = dict(checked["error"], origin="child")
    return checked


def graders_failure(error) -> bool:
    """Whether an error record says the grader or the machine failed (see GRADER_FAILURES)."""
    return (isinstance(error, dict) and error.get("origin") == GRADER
            and error.get("type") in GRADER_FAILURES)


# ---------------------------------------------------------------------- the child's processes

def processes() -> dict[int, int]:
    """pid -> parent pid of every process we can see (empty where /proc is missing)."""
    parents = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    return parents


def descendants(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """root and every process below it."""
    parents = processes() if parents is None else parents
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def tagged(token: str, pids) -> set[int]:
    """The processes whose environment carries this sandbox's token (left its tree or not)."""
    needle = f"{MARKER}={token}".encode()
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


def end_processes(root: int, token: str) -> None:
    """Stop the tree under `root` and every tagged process until no new one appears (a stopped
    process cannot fork), then kill them all."""
    stopped = set()
    for _ in range(20):
        parents = processes()
        found = (descendants(root, parents) | tagged(token, parents)) - stopped
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        stopped |= found
    _signal(-root, signal.SIGKILL)  # the child's own group (also where /proc is missing)
    for pid in stopped | {root}:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tree_mb(root: int) -> float:
    """Anonymous and shared resident memory of a process and all its descendants."""
    return sum(anonymous_mb(pid) for pid in descendants(root))


def anonymous_mb(pid: int) -> float:
    """Anonymous and shared resident memory of a process (the read-only data pages are not
    counted; shared memory is, in every process that maps it: an upper bound)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total += int(line.split()[1]) / 1024
    except OSError:
        pass
    return total
