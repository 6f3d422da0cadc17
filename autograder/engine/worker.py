"""The sandbox child: `python -m autograder.engine.worker REQ_FD RES_FD ROLE DATA_LIMIT_MB`.

It runs inside the jail (see `jail`), or, where there is none, as a plain child process.
It limits its own resources, becomes the subreaper of whatever it starts, imports torch and
reports "started"; only then does it read which submission to define (its first request:
{"kind": "load", "plan": PATH, "probes": MODULE}), so that a jail can be started before its
submission is known (its start-up, mostly `import torch`, overlaps other work). It defines the
submission's kept statements one by one, reports "ready", then answers each probe request on
the private channel. ROLE "clean" defines nothing: that child only runs the grader's own code
on what another child exported (see the lesson's CLEAN probes). Everything the student's code
prints goes to stdout/stderr, which the grader drains and never reads results from.
DATA_LIMIT_MB > 0 sets RLIMIT_DATA (where no cgroup bounds the jail's memory).
"""
from __future__ import annotations

import builtins
import ctypes
import faulthandler
import importlib
import json
import os
import resource
import signal
import sys
import types

STATEMENT_SECONDS = 10  # defining one top-level statement (a class, an import) may take this
EXTRA_PROCESSES = 256   # processes and threads the student may add (not enforced for root)
PR_SET_CHILD_SUBREAPER = 36


def limit_resources(data_mb: int) -> None:
    if data_mb > 0:
        memory = data_mb * 2 ** 20
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))          # a segfault leaves no core file
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2 ** 20, 64 * 2 ** 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file is an OSError, not a kill


def become_subreaper() -> None:
    """Orphans of the processes started here are re-parented to this process, not to init."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the grader still kills the tagged processes
        pass


def limit_processes() -> None:
    """RLIMIT_NPROC counts every task of the user (root is exempt): allow a margin over now."""
    if os.geteuid() == 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    limit = _user_tasks() + EXTRA_PROCESSES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def _user_tasks() -> int:
    uid, count = str(os.getuid()), 0
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if fields["Uid"].split()[0] == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def define(plan: dict, describe) -> tuple[dict, dict]:
    """Run each kept statement in a fresh namespace; errors are recorded per defined name.

    The namespace is a module that this child registers as `__main__`, as Jupyter and `python
    file.py` do: torch.export (dynamo, torch 2.13) guards a global of `forward` through the
    module its globals name (`__name__`, so sys.modules['__main__']); with a plain dict, every
    model was "not exportable" (AttributeError: module '__main__' has no attribute 'torch')."""
    program = types.ModuleType("__main__")
    program.__builtins__ = builtins
    define.replaced = sys.modules.get("__main__")  # kept alive: its functions still run
    sys.modules["__main__"] = program
    ns = program.__dict__
    errors = {}
    for statement in plan["statements"]:
        source = "\n" * (statement["lineno"] - 1) + statement["source"]
        try:
            with alarm(STATEMENT_SECONDS):
                exec(compile(source, plan["filename"], "exec"), ns)
        except BaseException as error:  # noqa: B036 -- SystemExit, too, must not stop grading
            for name in statement["names"]:
                errors[name] = describe(error)
    return ns, errors


class alarm:
    """Raise TimeoutError in the main thread once the process has used `seconds` of CPU (pure-
    Python loops stop at once). CPU, not the wall clock: a busy machine slows a statement down
    without making it the student's fault. A statement that waits without computing is bounded
    by the grader's clock instead (see `clock`)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def _ring(self, *_):
        raise TimeoutError(f"defining this took more than {self.seconds} s of computing: "
                           f"top-level code must only define things, not compute them")

    def __enter__(self):
        self.previous = signal.signal(signal.SIGPROF, self._ring)
        signal.setitimer(signal.ITIMER_PROF, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self.previous)


def warm_up(torch) -> None:
    """The first optimizer step imports torch._dynamo (~1 s): pay it before any probe's clock.
    The clean child needs none of it: it runs plain programs (lessons/common/plaingraph.py)."""
    weight = torch.nn.Parameter(torch.ones(1))
    weight.sum().backward()
    torch.optim.Adam([weight]).step()


def serve(requests, res_fd: int, probes: dict, ns: dict) -> None:
    from autograder.engine import probing
    from autograder.engine.wire import write_frame

    for line in requests:
        request = json.loads(line)
        try:
            outcome = probing.run_probe(probes[request["probe"]], ns, request["seed"],
                                        request.get("args"))
        except BaseException as error:  # noqa: B036 -- KeyboardInterrupt raised by the student
            outcome = {"ok": False, "error": probing.describe(error), "seconds": 0.0}
        reply = {"kind": "result", "nonce": request["nonce"], "outcome": outcome}
        try:
            write_frame(res_fd, reply)
        except Exception as error:  # the probe returned something torch.save cannot store
            reply["outcome"] = {"ok": False, "seconds": outcome.get("seconds", 0.0),
                                "error": {"type": "Malformed", "message": str(error)[:200]}}
            write_frame(res_fd, reply)


def main(argv: list[str]) -> int:
    req_fd, res_fd, role, data_mb = argv
    limit_resources(int(data_mb))
    become_subreaper()
    faulthandler.enable()  # a crash prints its Python traceback: the instructor's details
    import torch

    prepare(torch, role)
    return submission(int(req_fd), int(res_fd), role)


def prepare(torch, role: str) -> None:
    """Everything a child does before it may learn its submission (the fork server does it
    once for all its children, see `zygote`)."""
    torch.set_num_threads(1)
    if role != "clean":
        warm_up(torch)
    from autograder.engine import probing, wire  # noqa: F401 -- imported ahead of the clock


def submission(req_fd: int, res_fd: int, role: str) -> int:
    """Say "started", read which submission to define, define it, answer its probes."""
    from autograder.engine import probing
    from autograder.engine.wire import write_frame

    write_frame(res_fd, {"kind": "started"})
    requests = os.fdopen(req_fd, "rb")
    load = json.loads(requests.readline())
    with open(load["plan"]) as f:
        plan = json.load(f)
    probing.STUDENT_FILE = plan["filename"]
    probes = importlib.import_module(load["probes"]).PROBES  # the lesson's (from the grader)
    limit_processes()
    ns, errors = define(plan, probing.describe) if role != "clean" else ({}, {})
    write_frame(res_fd, {"kind": "ready", "errors": errors})
    serve(requests, res_fd, probes, ns)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # threads the student started must not keep the child alive
