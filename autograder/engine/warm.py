"""Children started ahead of need, each serving exactly one submission.

Starting a child costs seconds (mostly `import torch`), and every submission needs two: the jail
that runs the student's code and the clean child that evaluates what it exported. A `Warm` pool
keeps `size` children of each kind spawned and "started" (torch imported; the student's jail
has read no plan yet, see `worker.main`; the clean child has loaded the grader's probes too), so
that a submission takes them ready and a replacement starts at once, in the background, while
the submission is graded:

    with Warm(lesson, limits, size=2, expected=len(paths)) as warm:  # size: grading threads
        for path in paths:                                           # in any number of threads
            grade(path, lesson, limits=limits, warm=warm)

A child is never reused: the student's jail ran student code, and the clean child is not shared
either, because loading an exported program can run code the student chose (see
docs/threat-model.md, "Children started ahead of need"). The submission's clock (its budget, its
start-up seconds) starts when it takes its children. A child that died or waited longer than
STALE_S is discarded and replaced; when none is ready, the submission starts its own, as without
a pool, and a child that cannot start is the grader's failure (SandboxError), never the student's.

The pool starts its children from one long-lived thread: bubblewrap's --die-with-parent ties a
jail's life to the thread that spawned it.
"""
from __future__ import annotations

import threading
import time

from autograder.engine.lesson import resolve
from autograder.engine.sandbox import CLEAN_PLAN, Limits, Sandbox

STALE_S = 600.0  # a child that has waited this long is replaced, not used
ROLES = ("student", "clean")


class Warm:
    def __init__(self, lesson, limits: Limits | None = None, size: int = 1,
                 expected: int | None = None):
        """`size` children of each kind ready, for at most `expected` submissions (no child is
        started that no submission will take)."""
        self.lesson, self.limits, self.size = resolve(lesson), limits or Limits(), size
        self.ready = {role: [] for role in ROLES}    # started children, oldest first
        self.starting = {role: 0 for role in ROLES}  # asked for, not started yet
        self.left = {role: float("inf") if expected is None else expected for role in ROLES}
        if not self.lesson.clean:  # no probe of this lesson is evaluated in a clean child
            self.left["clean"] = 0
        self.failures = 0                            # children that could not start ahead
        self.closed = False
        self.changed = threading.Condition()
        self.starter = threading.Thread(target=self._start_loop, daemon=True,
                                        name="autograder-warm")

    def __enter__(self):
        with self.changed:
            for role in ROLES:
                self._top_up(role)
        self.starter.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def fits(self, lesson, limits: Limits) -> bool:
        """Its children are for this lesson and these limits (else grade starts its own)."""
        return lesson.id == self.lesson.id and limits == self.limits and not self.closed

    def student(self, plan: dict) -> Sandbox:
        """A started jail for this submission, its plan handed over, its clock started now."""
        box = self._take("student")
        if box is None:
            return Sandbox(plan, self.lesson, self.limits)  # started by the caller, as always
        box.assign(plan)
        return box

    def clean(self) -> Sandbox:
        """A started clean child, for this submission only (its clock starts now)."""
        box = self._take("clean")
        if box is None:
            return Sandbox(CLEAN_PLAN, self.lesson, self.limits)
        box.begin()
        return box

    def close(self) -> None:
        """Close the children still waiting; call it once no submission uses a child taken from
        the pool (those die with the starter thread)."""
        with self.changed:
            self.closed = True
            left = [box for role in ROLES for box in self.ready[role]]
            self.ready = {role: [] for role in ROLES}
            self.changed.notify_all()
        for box in left:
            box.close()
        if self.starter.is_alive():
            self.starter.join()

    # ------------------------------------------------------------------ taking

    def _take(self, role: str) -> Sandbox | None:
        """The oldest started child still waiting, or None when none comes within the start-up
        limit (the caller then starts its own). Replacements are asked for at once."""
        deadline = time.monotonic() + self.limits.startup_s
        with self.changed:
            self.left[role] -= 1  # submissions still to come after this one
            while not self.closed:
                while self.ready[role]:
                    box = self.ready[role].pop(0)
                    if box.waiting() and time.monotonic() - box.spawned_at < STALE_S:
                        self._top_up(role)
                        return box
                    box.close()  # died or went stale while waiting: discarded
                self._top_up(role)
                if not self.starting[role] or time.monotonic() >= deadline:
                    return None
                self.changed.wait(min(1.0, deadline - time.monotonic()))
        return None

    def _top_up(self, role: str) -> None:
        """Ask for children until `size` are ready or starting, as long as submissions remain."""
        missing = min(self.size, self.left[role]) - len(self.ready[role]) - self.starting[role]
        if missing > 0:
            self.starting[role] += int(missing)
            self.changed.notify_all()

    # ------------------------------------------------------------------ starting

    def _start_loop(self) -> None:
        while True:
            with self.changed:
                while not self.closed and not any(self.starting.values()):
                    self.changed.wait()
                if self.closed:
                    return
                role = max(ROLES, key=lambda r: (self.starting[r], r == "student"))
            box = self._start(role)
            with self.changed:
                self.starting[role] -= 1
                if box is not None and not self.closed:
                    self.ready[role].append(box)
                    box = None
                self.changed.notify_all()
            if box is not None:  # closed while it started
                box.close()

    def _start(self, role: str) -> Sandbox | None:
        box = Sandbox(CLEAN_PLAN if role == "clean" else None, self.lesson, self.limits)
        try:
            box.prestart(load=role == "clean")
        except Exception:  # SandboxError, NoJail, OSError: the grader's, never a student's
            box.close()
            self.failures += 1  # a submission that finds none ready starts its own
            return None
        return box
