"""The grading pipeline: submission → sandbox probes → judges → Report.

    load (submission.py) → run the probes the chosen checks need (sandbox.py, or in-process
    for a live notebook) → judge each check here, in the grader's process → Report.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import time
import warnings
from dataclasses import dataclass, field

from autograder import submission as submissions
from autograder.checks import DEFAULT_LESSON, CheckResult, Verdict, lesson_module, select
from autograder.explain import Context
from autograder.sandbox import Limits, Sandbox


@dataclass
class Report:
    lesson: str
    submission: str
    results: list[CheckResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    probe_seconds: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_score for r in self.results)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failed_ids(self) -> set[str]:
        return {r.check.id for r in self.results if not r.passed}

    def to_dict(self, student: bool = False) -> dict:
        out = {"lesson": self.lesson, "score": self.score, "max_score": self.max_score,
               "checks": [r.to_dict(student) for r in self.results]}
        if not student:
            out.update(submission=self.submission, notes=self.notes,
                       seconds=round(self.seconds, 3),
                       probe_seconds={k: round(v, 3) for k, v in self.probe_seconds.items()})
        return out


def grade(path, lesson: str = DEFAULT_LESSON, only: str | None = None,
          public_only: bool = False, limits: Limits | None = None, seed: int = 0) -> Report:
    """Grade one file. Raises SubmissionError only when there is nothing to grade."""
    start = time.perf_counter()
    sub = submissions.load(path)
    module = lesson_module(lesson)
    checks = select(lesson, only, public_only)
    limits = limits or Limits()
    ctx = Context(gaps=module.GAPS, what=module.WHAT, where=sub.where, dropped=sub.dropped,
                  problems=sub.problems, memory_mb=limits.memory_mb)
    outcomes, startup = _sandboxed(sub, lesson, checks, limits, ctx, module, seed)
    results = [judge(check, outcomes[check.probe], ctx) for check in checks]
    seconds = {"startup": startup, **{p: o["seconds"] for p, o in outcomes.items()}}
    return Report(lesson, str(path), results, list(sub.problems), time.perf_counter() - start,
                  seconds)


def _sandboxed(sub, lesson, checks, limits, ctx, module, seed) -> tuple[dict, float]:
    """Each probe's outcome, and the seconds spent starting children."""
    needs = {}
    for check in checks:
        names = needs.setdefault(check.probe, [])
        names += [n for n in check.needs if n not in names]
    defined = sub.defined()
    outcomes = {probe: _missing(names, defined) for probe, names in needs.items()}
    runnable = [probe for probe, outcome in outcomes.items() if outcome is None]
    startup = 0.0
    if runnable:
        with Sandbox(sub.plan(), lesson, limits) as box:
            for probe in runnable:
                factor = module.TIME_FACTOR.get(probe, 1)
                outcomes[probe] = box.run(probe, limits.time_s * factor, seed)
            ctx.define_errors = box.define_errors
            startup = box.startup_seconds
    return outcomes, startup


def _missing(names, defined):
    for name in names:
        if name not in defined:
            return {"ok": False, "error": {"type": "MissingName", "name": name}, "seconds": 0.0}
    return None


def judge(check, outcome: dict, ctx: Context) -> CheckResult:
    """A CheckResult from a probe's outcome. Whatever the outcome holds (the child may have
    been tampered with), judging fails the check rather than the grader."""
    start = time.perf_counter()
    try:
        if not outcome["ok"]:
            verdict = Verdict(False, ctx.failure(outcome["error"], check.probe),
                              {"error": outcome["error"]})
        else:
            verdict = check.judge(outcome["data"], ctx)
    except Exception as error:
        verdict = Verdict(False, f"the grader could not judge this check ({type(error).__name__}: "
                                 f"{error}); please report it to your instructor")
    message = verdict.message or (check.success if verdict.passed else check.fail)
    return CheckResult(check, verdict.passed, message, verdict.details,
                       time.perf_counter() - start)


def grade_namespace(ns: dict, lesson: str = DEFAULT_LESSON, only: str | None = None) -> Report:
    """Self-check of a live notebook: public checks, probes run right here on `ns`."""
    from autograder import probing

    start = time.perf_counter()
    module = lesson_module(lesson)
    probes = importlib.import_module(module.PROBES_MODULE).PROBES
    checks = select(lesson, only, public_only=True)
    ctx = Context(gaps=module.GAPS, what=module.WHAT)
    outcomes = {}
    with quiet():
        for check in checks:
            if check.probe not in outcomes:
                outcomes[check.probe] = probing.run_probe(probes[check.probe], ns)
        results = [judge(check, outcomes[check.probe], ctx) for check in checks]
    return Report(lesson, "<notebook>", results, [], time.perf_counter() - start,
                  {p: o["seconds"] for p, o in outcomes.items()})


@contextlib.contextmanager
def quiet():
    """Nothing from the probes reaches stderr (nbgrader zeroes a test cell that writes there)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink), \
            contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        yield
