"""How much time a jailed child has had: its own time, whatever else the machine is doing.

A time limit measured on the wall clock depends on the machine: with every core busy elsewhere,
a correct submission was "too slow". A step of a child (loading the student's file, a probe) is
charged its own time instead, the larger of

    run  the wall time of that step, less the time the jail's threads spent waiting for a CPU
         (the kernel's run-queue delay, /proc/TID/schedstat; the most any one thread of the
         jail waited, so that work done in a thread or a process of its own is treated as the
         worker's): what the step would have taken on a quiet machine, sleeping and waiting for
         locks included;
    cpu  the CPU time every process of the jail used meanwhile (its cgroup, else /proc): a
         student's own extra processes count, even while they keep the worker waiting.

`run` is what a limit means on a quiet machine, and no other process can make it grow; `cpu`
is what a submission cannot hide by working in processes of its own. The wall clock stays as a
backstop only: a step whose wall time passes WALL_FACTOR × its limit while its own time has
not reached the limit was starved by the machine, and that is the grader's failure ("Starved",
never the student's: the submission is graded again, see `grading`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

WALL_FACTOR = 10.0  # a step is the machine's failure past this many times its limit, wall-clock
WALL_SLACK = 30.0   # ... plus this: short limits are not starved by a moment's load
CHECK_S = 0.25      # how often a step reads the jail's clock (a few hundred small /proc reads)
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Reading:
    wall: float   # time.monotonic()
    cpu: float    # CPU seconds the jail's processes used so far
    waited: dict  # thread id -> seconds it spent waiting for a CPU so far


class Clock:
    """The time of one child: its jail's CPU and its worker's run-queue delay."""

    def __init__(self, root: int, cgroup=None):
        self.root, self.cgroup = root, cgroup  # the child's pid, as the grader sees it
        self.worker: int | None = None         # the process that runs the probes
        self.last = Reading(time.monotonic(), 0.0, {})
        self.seen: dict[int, float] = {}  # thread id -> its delay when last seen, ended or not

    def attach(self) -> None:
        """Find the worker: the one process at the bottom of the child's tree. Call it when the
        child says "started": no student code has run yet, so the tree is the grader's own
        (sh/bwrap/setpriv/python, or the fork server's keeper and its child)."""
        from autograder.engine.sandbox import descendants, processes

        parents = processes()
        tree = descendants(self.root, parents)
        leaves = [pid for pid in tree if not any(parents.get(p) == pid for p in tree)]
        self.worker = max(leaves, key=lambda pid: _depth(pid, self.root, parents),
                          default=self.root)

    def read(self) -> Reading:
        """Now; a CPU total that cannot be read (the jail has gone) keeps its last value."""
        cpu = self._cpu()
        self.seen.update(self._waited())  # a thread that has ended keeps its last delay
        self.last = Reading(time.monotonic(), self.last.cpu if cpu is None else cpu,
                            dict(self.seen))
        return self.last

    def own(self, since: Reading) -> tuple[float, float]:
        """(own seconds, wall seconds) since `since`. Before the worker is known (the grader's
        own start-up), only CPU counts."""
        now = self.read()
        wall = now.wall - since.wall
        delays = [waited - since.waited.get(tid, 0.0) for tid, waited in now.waited.items()]
        run = wall - max(delays, default=0.0) if self.worker else 0.0
        return max(run, now.cpu - since.cpu), wall

    def _cpu(self) -> float | None:
        counted = self.cgroup.cpu_seconds() if self.cgroup is not None else None
        return counted if counted is not None else tree_cpu_seconds(self.root)

    def _waited(self) -> dict:
        """thread id -> its run-queue delay so far, for every thread of the jail that runs now
        (its cgroup's; without one, the worker's threads)."""
        if self.worker is None:
            return {}
        tids = self.cgroup.tasks() if self.cgroup is not None else None
        if tids is None:
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{self.worker}/task")]
            except OSError:
                tids = []
        waited = {}
        for tid in tids:
            try:
                with open(f"/proc/{tid}/schedstat") as f:
                    waited[tid] = int(f.read().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
        return waited


def _depth(pid: int, root: int, parents: dict) -> int:
    depth = 0
    while pid != root and pid in parents and depth < 64:
        pid, depth = parents[pid], depth + 1
    return depth


def tree_cpu_seconds(root: int) -> float | None:
    """CPU time of a process, its descendants and the children they reaped (/proc), where no
    cgroup counts it."""
    from autograder.engine.sandbox import descendants

    total, seen = 0.0, False
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        total += sum(int(v) for v in fields[11:15]) / TICK  # utime stime cutime cstime
        seen = True
    return total if seen else None


class Step:
    """One wait on a child: `limit` seconds of its own time, then `over` ("Timeout", or
    "Budget" when the submission's budget is what runs out); past `backstop` wall seconds with
    its own time under the limit, the machine starved it ("Starved")."""

    def __init__(self, clock: Clock, limit: float, over: str = "Timeout", what: str = "",
                 wall_factor: float = WALL_FACTOR, wall_slack: float = WALL_SLACK):
        self.clock, self.limit, self.over, self.what = clock, max(limit, 0.0), over, what
        self.backstop = self.limit * wall_factor + wall_slack
        self.since = clock.read()
        self.asked = self.since.wall  # the clock is read every CHECK_S, not at every poll

    def spent(self) -> tuple[float, float]:
        """(own seconds, wall seconds) so far."""
        return self.clock.own(self.since)

    def expired(self) -> dict | None:
        """None while the step may go on; else the error record that ends it."""
        if time.monotonic() - self.asked < CHECK_S:
            return None
        self.asked = time.monotonic()
        own, wall = self.spent()
        if own >= self.limit:
            return {"type": self.over, "limit": self.limit}
        if wall >= self.backstop:
            return {"type": "Starved", "limit": self.limit, "own": round(own, 1),
                    "wall": round(wall, 1),
                    "message": f"the grader ran out of time: the machine was too busy to give "
                               f"{self.what or 'a step'} its {self.limit:.0f} s ({own:.0f} s "
                               f"of its own in {wall:.0f} s)"}
        return None
