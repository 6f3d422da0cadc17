"""A lesson, as the engine sees it: one typed record, built by the lesson's own package.

The engine knows no lesson by name and no dataset: it receives a `Lesson` and uses only what
the record says — the checks (data), the module of probes the jail imports, which probes run
again in the clean child, the time each probe may take, and the data files each kind of child
is given. The registry of lessons is `autograder.lessons` (one dict, no default lesson).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from autograder.engine.checks import Check, UsageError

DATA_ENV = "AUTOGRADER_DATA"  # a child finds the data files it was given listed here


@dataclass(frozen=True)
class Lesson:
    id: str                     # "01_mnist_dnn": the notebook's name and nbgrader assignment
    title: str                  # "Handwritten digits with a fully connected network"
    teaches: str                # one line for the README's table of lessons
    checks: tuple[Check, ...]   # the catalogue, in the order a student meets the gaps
    gaps: Mapping[str, int]     # submission name -> the gap that defines it ("MyModel": 1)
    what: Mapping[str, str]     # probe -> what it does, for "too slow: <what> ..." messages
    probes: str                 # module the jail imports to find PROBES (name -> function)
    data: Callable[[str], Sequence[Path]]  # "student" | "clean" -> the verified data files
    clean: Mapping[str, str] = field(default_factory=dict)  # probe -> its clean-child evaluation
    time_factor: Mapping[str, float] = field(default_factory=dict)  # probe -> × Limits.time_s
    budgets: Mapping[str, float] = field(default_factory=dict)  # documented limits (parameters)
    thresholds: Mapping[str, float] = field(default_factory=dict)  # hidden minimums, calibrated
    secret: frozenset = frozenset()  # probes handed a secret drawn per grading (their inputs)
    hints: Mapping[str, str] = field(default_factory=dict)  # error regex -> the likely cause
    minutes: int = 60           # a student's time for the lesson, for the README

    def __post_init__(self):
        ids = [c.id for c in self.checks]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"lesson {self.id}: duplicate check ids {duplicated}")
        for check in self.checks:
            if not callable(check.judge):
                raise ValueError(f"lesson {self.id}: check {check.id} has no judge")
        if self.secret & set(self.clean):  # both would keep their secret under "secret"
            raise ValueError(f"lesson {self.id}: a probe is both secret and clean")
        groups = set(self.groups)
        if groups & set(ids):
            raise ValueError(f"lesson {self.id}: a group and a check share a name")

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.group for c in self.checks))

    def select(self, name: str | None = None, public_only: bool = False) -> tuple[Check, ...]:
        """The checks of a group ("model", ...) or the one check with that id; all when None."""
        checks = self.checks
        if name is not None:
            checks = tuple(c for c in checks if name in (c.group, c.id))
            if not checks:
                raise UsageError(f"{name!r} is neither a group ({', '.join(self.groups)}) nor "
                                 f"a check id of lesson {self.id}")
        if public_only:
            checks = tuple(c for c in checks if not c.hidden)
        return checks

    def group_points(self, group: str) -> float:
        """Total points of a group (or of a single check id): the nbgrader grade cell's points."""
        return float(sum(c.points for c in self.select(group)))

    @property
    def max_score(self) -> float:
        return float(sum(c.points for c in self.checks))

    def time_limit(self, probe: str, seconds: float) -> float:
        return seconds * self.time_factor.get(probe, 1)


def resolve(lesson) -> Lesson:
    """A Lesson from itself or from its id (looked up in the registry, `autograder.lessons`)."""
    if isinstance(lesson, Lesson):
        return lesson
    from autograder import lessons

    return lessons.get(lesson)
