"""The grading pipeline: submission → sandbox probes → judges → Report.

    load (submission.py) → run the probes the chosen checks need (sandbox.py, or in-process
    for a live notebook) → judge each check here, in the grader's process → Report.

A number reported by a process that ran student code is a claim. What a probe exports (the
student's model, as a `torch.export` program) is checked and run in a second, clean child that
never runs student code, under the same limits (see the lesson's CLEAN probes).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import secrets
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autograder.engine import submission as submissions
from autograder.engine.checks import CheckResult, Verdict
from autograder.engine.explain import Context
from autograder.engine.lesson import Lesson, resolve
from autograder.engine.sandbox import (CLEAN_PLAN, GraderUnavailable, Limits, Sandbox,
                                       SandboxError, graders_failure)


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


def grade(path, lesson: Lesson | str | None = None, only: str | None = None,
          public_only: bool = False, limits: Limits | None = None, seed: int = 0,
          warm=None, progress=None) -> Report:
    """Grade one file, as the lesson it declares (`lesson`, when given, must agree with it).
    `warm` (a warm.Warm pool or a zygote.Forks, optional) hands it its children; `progress`,
    called with a short line as each step starts, tells a waiting user what is going on.
    Raises SubmissionError when the file cannot be read, UsageError when the lesson is unknown
    or cannot be told, GraderUnavailable when the grader or the machine failed (see ATTEMPTS)."""
    start = time.perf_counter()
    say = progress or (lambda text: None)
    say(f"reading {Path(path).name}")
    sub = submissions.load(path)
    if sub.unreadable:
        raise submissions.SubmissionError(sub.unreadable)
    if sub.unavailable:
        raise GraderUnavailable(sub.unavailable)
    lesson = lesson_of(sub, lesson)
    checks = lesson.select(only, public_only)
    limits = limits or Limits()
    ctx = Context(gaps=lesson.gaps, what=lesson.what, hints=lesson.hints, where=sub.where,
                  dropped=sub.dropped,
                  problems=sub.problems, memory_mb=limits.memory_mb)
    warm = warm if warm is not None and warm.fits(lesson, limits) else None
    outcomes, startup = _attempts(sub, lesson, checks, limits, ctx, seed, warm, say)
    say("judging")
    results = hint_hidden([judge(check, outcomes[check.probe], ctx) for check in checks])
    seconds = {"startup": startup, **{p: o["seconds"] for p, o in outcomes.items()}}
    return Report(lesson.id, str(path), results, list(sub.problems) + isolation_notes(),
                  time.perf_counter() - start, seconds)


ATTEMPTS = 2  # a submission the grader or the machine failed is graded anew, this many times


def _attempts(sub, lesson, checks, limits, ctx, seed, warm, say) -> tuple[dict, float]:
    """The probes' outcomes, from a grading in which neither the grader nor the machine failed:
    a sandbox that could not start, or a step the machine starved of CPU (an outcome "Starved"),
    is the grader's failure, so the whole submission is graded again, in fresh children; after
    ATTEMPTS, GraderUnavailable. What one attempt saw never mixes with another's."""
    failure = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            say(f"{failure}: grading again (attempt {attempt + 1} of {ATTEMPTS})")
        try:
            outcomes, startup = _sandboxed(sub, lesson, checks, limits, ctx, seed, warm, say)
        except GraderUnavailable:
            raise
        except SandboxError as error:
            failure = f"the grader's sandbox could not start ({str(error)[:300]})"
            continue
        failure = _starved(outcomes, lesson.clean)
        if not failure:
            return outcomes, startup
    raise GraderUnavailable(f"not graded: {failure}, {ATTEMPTS} times; this is the grading "
                            f"machine's failure, not yours: it will be graded again")


def _starved(outcomes: dict, clean) -> str:
    """"" unless the sandbox saw the grader or the machine fail a probe or its clean evaluation
    (`sandbox.graders_failure`: a step starved of CPU, a lost child): then what, in words. Only
    the grader's own records count: a child's claim, or an "evaluation" the jail wrote into a
    probe that has none, is not the machine's failure."""
    for probe, outcome in outcomes.items():
        data = outcome.get("data") if outcome["ok"] else None
        evaluation = data.get("evaluation") if probe in clean and isinstance(data, dict) else None
        for step in (outcome, evaluation):
            error = step.get("error") if isinstance(step, dict) and not step.get("ok") else None
            if graders_failure(error):
                return error.get("message") or f"the grader failed while {probe} ran"
    return ""


def lesson_of(sub, lesson) -> Lesson:
    """The lesson to grade `sub` as: the record given, else the one it declares (the registry,
    autograder.lessons, reads its metadata and check cells) and that agrees with `lesson`."""
    if isinstance(lesson, Lesson):
        return lesson
    from autograder import lessons

    return lessons.detect(sub, lesson)


def isolation_notes() -> list[str]:
    """Where no jail could run, every report says so (see autograder/engine/jail.py)."""
    from autograder.engine.jail import isolation

    found = isolation()
    return [] if found.jailed else [f"isolation: {found.describe()}"]


def _sandboxed(sub, lesson: Lesson, checks, limits, ctx, seed, warm,
               say=lambda text: None) -> tuple[dict, float]:
    """Each probe's outcome, and the seconds spent starting children."""
    needs = {}
    for check in checks:
        names = needs.setdefault(check.probe, [])
        names += [n for n in check.needs if n not in names]
    defined = sub.defined()
    outcomes = {probe: _missing(names, defined) for probe, names in needs.items()}
    runnable = [probe for probe, outcome in outcomes.items() if outcome is None]
    clean = {p: q for p, q in lesson.clean.items() if p in runnable}
    if not runnable:
        return outcomes, 0.0
    say("starting the sandbox (importing torch) and loading your file")
    with _student_box(sub, lesson, limits, warm) as box, \
            _clean_box(clean, lesson, limits, warm) as spare:
        for probe in runnable:
            say(lesson.what.get(probe, probe))
            outcomes[probe] = with_secret(lesson, probe, lambda args, p=probe: box.run(
                p, lesson.time_limit(p, limits.time_s), seed, args))
            if probe in clean:
                say(lesson.what.get(clean[probe], clean[probe]))
                _evaluate_cleanly(outcomes[probe], clean[probe], spare, lesson, limits, seed)
        ctx.define_errors = box.define_errors
        startup = box.startup_seconds + (spare.startup_seconds if spare else 0.0)
    return outcomes, startup


def _student_box(sub, lesson: Lesson, limits: Limits, warm):
    """The jail for this submission only: started ahead of need by `warm`, or now."""
    return warm.student(sub.plan()) if warm else Sandbox(sub.plan(), lesson, limits)


def _clean_box(clean: dict, lesson: Lesson, limits: Limits, warm):
    """A second child, running none of the student's code, for this submission only: started
    ahead of need by `warm`, or now so that its start-up (importing torch) overlaps the
    student's probes; None when no probe needs it."""
    if not clean:
        return contextlib.nullcontext()
    return warm.clean() if warm else Sandbox(CLEAN_PLAN, lesson, limits)


def _evaluate_cleanly(outcome: dict, probe: str, box: Sandbox, lesson, limits, seed) -> None:
    """Run `probe` in the clean child on what the jail exported (see `evaluate`)."""
    def run(args: dict) -> dict:
        return box.run(probe, lesson.time_limit(probe, limits.time_s), seed, args)

    evaluate(outcome, box.workdir, run)


def evaluate(outcome: dict, folder: Path, run) -> None:
    """Hand the programs a probe exported (the student's model) to `run`, a process that never
    runs student code, with a secret drawn now, which no process that ran student code sees.
    Its outcome goes into the first probe's data as "evaluation", the secret as "secret";
    whatever the jail put under those keys is dropped first. Files go through `folder`."""
    data = outcome.get("data") if outcome["ok"] else None
    if not isinstance(data, dict):
        return
    for key in ("evaluation", "secret"):
        data.pop(key, None)
    blobs = data.pop("blobs", None)
    paths = {}
    for i, (label, blob) in enumerate(blobs.items() if isinstance(blobs, dict) else ()):
        if isinstance(label, str) and isinstance(blob, torch.Tensor) and \
                blob.dtype == torch.uint8 and blob.dim() == 1 and i < MAX_PROGRAMS:
            paths[label] = str(folder / f"exported-{i}.pt2")
            Path(paths[label]).write_bytes(blob.numpy().tobytes())
    data["secret"] = secrets.randbits(62)
    data["evaluation"] = run({"paths": paths, "secret": data["secret"]})
    outcome["seconds"] += data["evaluation"]["seconds"]


MAX_PROGRAMS = 4  # exported programs one probe may hand to the clean child


def with_secret(lesson: Lesson, probe: str, run) -> dict:
    """`run(args)`, the probe's outcome. A probe the lesson lists in `secret` builds its inputs
    from a secret drawn now, so no answer can be prepared before this grading; the judges find
    it in the probe's data as "secret", whatever the jail put there."""
    if probe not in lesson.secret:
        return run(None)
    secret = secrets.randbits(62)
    outcome = run({"secret": secret})
    if outcome["ok"] and isinstance(outcome.get("data"), dict):
        outcome["data"]["secret"] = secret
    return outcome


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


def hint_hidden(results: list[CheckResult]) -> list[CheckResult]:
    """A failed hidden check names the visible checks that failed: those are the place to start."""
    failed = [r.check.id for r in results if not r.passed and not r.check.hidden]
    if failed:
        for result in results:
            if result.check.hidden and not result.passed:
                result.hint = f"fix the visible checks that failed first: {', '.join(failed)}"
    return results


def grade_namespace(ns: dict, lesson: Lesson | str, only: str | None = None) -> Report:
    """Self-check of a live notebook: public checks, probes run right here on `ns`."""
    from autograder.engine import probing

    start = time.perf_counter()
    lesson = resolve(lesson)
    probes = importlib.import_module(lesson.probes).PROBES
    checks = lesson.select(only, public_only=True)
    ctx = Context(gaps=lesson.gaps, what=lesson.what, hints=lesson.hints)
    outcomes, clean = {}, lesson.clean
    with quiet(), tempfile.TemporaryDirectory(prefix="autograder-") as folder:
        for check in checks:
            if check.probe not in outcomes:
                run = lambda args, p=check.probe: probing.run_probe(probes[p], ns, 0, args)
                outcomes[check.probe] = with_secret(lesson, check.probe, run)
                if check.probe in clean:  # a self-check: here, in the student's own kernel
                    evaluate(outcomes[check.probe], Path(folder), lambda args, p=check.probe:
                             probing.run_probe(probes[clean[p]], {}, 0, args))
        results = [judge(check, outcomes[check.probe], ctx) for check in checks]
    return Report(lesson.id, "<notebook>", results, [], time.perf_counter() - start,
                  {p: o["seconds"] for p, o in outcomes.items()})


@contextlib.contextmanager
def quiet():
    """Nothing from the probes reaches stderr (nbgrader zeroes a test cell that writes there)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink), \
            contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        yield
