"""Run probes on a submission in a child process with time and memory limits.

One child serves all probes of a submission (importing torch costs seconds); a probe that
times out, exhausts memory or kills the process fails alone, and the next probe gets a fresh
child. The child's stdout/stderr are drained into small buffers and never parsed: results
come back only on a private pipe, as frames the grader validates (see `wire`).

No process the student starts outlives the sandbox: the child makes itself the subreaper of
everything it starts (an orphan that calls setsid() stays in its tree), each sandbox tags its
processes' environment with a token, and closing stops then kills the whole tree and every
tagged process. The memory limit applies to the tree's sum.
"""
from __future__ import annotations

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

from autograder.wire import FrameReader, MalformedFrame

REPO = Path(__file__).resolve().parent.parent
MARKER = "MNIST_GRADER_SANDBOX"  # env var naming the sandbox a process belongs to
CLEAN_PLAN = {"statements": [], "filename": "<grader>", "clean": True}  # runs no student code


@dataclass
class Limits:
    time_s: float = 20.0      # wall-clock seconds per probe (see the lesson's TIME_FACTOR)
    memory_mb: int = 4096     # the child's data size and anonymous resident memory
    startup_s: float = 90.0   # importing torch and defining the submission


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
    def __init__(self, plan: dict, lesson: str, limits: Limits | None = None):
        self.lesson, self.limits = lesson, limits or Limits()
        self.workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
        self.plan_path = self.workdir / "plan.json"
        self.plan_path.write_text(json.dumps(plan))
        self.proc = None
        self.token = secrets.token_hex(8)
        self.start_error = None   # a child that cannot even start: every probe fails with it
        self.define_errors = {}
        self.startup_seconds = 0.0  # waiting for children to import torch and define the file

    def __enter__(self):
        self.spawn()
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ child lifecycle

    def spawn(self) -> None:
        req_r, self.req = os.pipe()
        self.res, res_w = os.pipe()
        cmd = [sys.executable, "-m", "autograder.worker", str(req_r), str(res_w),
               str(self.plan_path), self.lesson, str(self.limits.memory_mb)]
        self.proc = subprocess.Popen(cmd, pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=self.workdir, env={**child_env(), MARKER: self.token},
                                     start_new_session=True)
        os.close(req_r)
        os.close(res_w)
        self.reader = FrameReader()
        self.tails = (Tail(self.proc.stdout), Tail(self.proc.stderr))
        self.ready = False
        self.spawned = time.monotonic()

    def _wait_ready(self) -> dict | None:
        waiting = time.monotonic()
        reply = self._receive(self.spawned + self.limits.startup_s, self.limits.startup_s)
        self.startup_seconds += time.monotonic() - waiting  # a child started early costs less
        if "error" in reply:
            self.start_error = dict(reply["error"], phase="loading")
            self._kill()
            return self.start_error
        self.define_errors, self.ready = reply["value"].get("errors", {}), True
        return None

    def close(self) -> None:
        """Results are in: end the child and all it started (the tree goes while it is whole)."""
        if self.proc is not None:
            self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self) -> None:
        """End the child and anything it started; release its pipes."""
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
        """{"ok": True, "data": ...} or {"ok": False, "error": {...}}, plus "seconds".
        `args` (plain JSON) are passed to the probe as keyword arguments."""
        if self.start_error:
            return {"ok": False, "error": self.start_error, "seconds": 0.0}
        if self.proc is None:
            self.spawn()
        if not self.ready and self._wait_ready():
            return {"ok": False, "error": self.start_error, "seconds": 0.0}
        start = time.monotonic()
        nonce = secrets.token_hex(8)
        request = json.dumps({"probe": probe, "nonce": nonce, "seed": seed,
                              "args": args or {}}) + "\n"
        try:
            os.write(self.req, request.encode())
            reply = self._receive(start + timeout, timeout)
        except BrokenPipeError:
            reply = {"error": self._death()}
        outcome = _check_reply(reply, nonce)
        if not outcome["ok"] and outcome["error"]["type"] in _FATAL:
            self._kill()
            outcome["error"]["stderr_tail"] = self.tails[1].text()[-4000:]  # for instructors
        outcome["seconds"] = time.monotonic() - start  # measured here, not reported by the child
        return outcome

    def _receive(self, deadline: float, limit: float) -> dict:
        """The next frame as {"value": obj}, or {"error": record} on timeout/memory/death."""
        while True:
            try:
                frame = self.reader.pop()
            except MalformedFrame as error:
                return {"error": {"type": "Malformed", "message": str(error)}}
            if frame is not None:
                return {"value": frame}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"error": {"type": "Timeout", "limit": limit}}
            if tree_mb(self.proc.pid) > self.limits.memory_mb:
                return {"error": {"type": "MemoryLimit", "limit": self.limits.memory_mb}}
            readable, _, _ = select.select([self.res], [], [], min(0.1, remaining))
            if readable:
                data = os.read(self.res, 2 ** 20)
                if not data:
                    return {"error": self._death()}
                self.reader.feed(data)

    def _death(self) -> dict:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return {"type": "Malformed", "message": "the channel closed early"}
        if code < 0:
            return {"type": "Crash", "signal": signal.Signals(-code).name}
        return {"type": "Exit", "code": code}


_FATAL = ("Timeout", "MemoryLimit", "Crash", "Exit", "Malformed")


def _check_reply(reply: dict, nonce: str) -> dict:
    """Only a well-formed reply to this very request counts."""
    if "error" in reply:
        return {"ok": False, "error": reply["error"]}
    frame = reply["value"]
    outcome = frame.get("outcome") if isinstance(frame, dict) else None
    valid = (isinstance(outcome, dict) and frame.get("nonce") == nonce
             and isinstance(outcome.get("ok"), bool)
             and ("data" in outcome if outcome["ok"]
                  else isinstance(outcome.get("error"), dict)
                  and isinstance(outcome["error"].get("type"), str)))
    if not valid:
        return {"ok": False, "error": {"type": "Malformed", "message": "unexpected reply"}}
    return {key: outcome[key] for key in ("ok", "data", "error") if key in outcome}


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
    """Anonymous resident memory of a process and all its descendants."""
    return sum(anonymous_mb(pid) for pid in descendants(root))


def anonymous_mb(pid: int) -> float:
    """Anonymous resident memory of a process (the cached MNIST pages are not counted)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_env() -> dict:
    from autograder.datacache import ENV_VAR, cache_path

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env.update({
        ENV_VAR: str(cache_path()),
        "CUDA_VISIBLE_DEVICES": "",     # grading is on the CPU: same numbers on every machine
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TQDM_DISABLE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in
                                                     [os.environ.get("PYTHONPATH")] if p]),
    })
    return env
