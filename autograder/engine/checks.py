"""Checks are data: a `Check` says what is judged and what a student reads; a `CheckResult`
says what happened. Each lesson's record (engine/lesson.py) holds its catalogue of checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class UsageError(Exception):
    """An unknown lesson, group or check id (the CLI's exit code 2)."""


@dataclass(frozen=True)
class Check:
    """One named unit of grading.

    `probe` names the function that collects plain data from the submission (in the sandbox),
    `judge` turns that data into a `Verdict` (in the grader's own process). `needs` are the
    submission's names the probe uses; `fail` names the likely cause and the fix.
    """
    id: str
    title: str
    points: float
    group: str
    probe: str
    judge: Callable
    needs: tuple[str, ...]
    fail: str
    success: str
    hidden: bool = False
    public: Callable[[dict], str | None] | None = None  # hidden: what students see of details


@dataclass
class Verdict:
    """What a judge decides; `message` replaces the check's default text when given."""
    passed: bool
    message: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class CheckResult:
    check: Check
    passed: bool
    message: str
    details: dict = field(default_factory=dict)
    seconds: float = 0.0
    hint: str = ""          # shown to students even when the check is hidden

    @property
    def score(self) -> float:
        return float(self.check.points) if self.passed else 0.0

    @property
    def max_score(self) -> float:
        return float(self.check.points)

    def public_message(self) -> str:
        """What a student sees: hidden checks show only their verdict and generic text, and what
        their `public` takes from the details (lesson 02: the accuracy against the bar)."""
        if self.check.hidden:
            text = self.check.success if self.passed else self.check.fail
            shown = self.check.public(self.details) if self.check.public else None
            text = f"{text} ({shown})" if shown else text
        else:
            text = self.message
        return f"{text} — {self.hint}" if self.hint else text

    def full_message(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def summary(self, student: bool = False) -> str:
        mark = "✓" if self.passed else "✗"
        hidden = " (hidden)" if self.check.hidden else ""
        text = self.public_message() if student else self.full_message()
        return (f"{mark} {self.check.id}{hidden} "
                f"[{format_points(self.score)}/{format_points(self.max_score)}] "
                f"{self.check.title}: {text}")

    def to_dict(self, student: bool = False) -> dict:
        out = {"id": self.check.id, "title": self.check.title, "group": self.check.group,
               "passed": self.passed, "score": self.score, "max_score": self.max_score,
               "hidden": self.check.hidden,
               "message": self.public_message() if student else self.full_message()}
        if not student:
            out["details"] = self.details
            out["seconds"] = round(self.seconds, 3)
        return out


def format_points(x: float) -> str:
    """Points as people write them, the same everywhere (scorecard, CSV, self-check):
    2, 0, 25, 0.5 — never 2.0 next to 0, never 1e+06."""
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() else repr(x)
