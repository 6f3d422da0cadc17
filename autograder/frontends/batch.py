"""Grade a folder of submissions: one file or one folder per student → CSV + feedback files.

    find the submissions → skip those graded before with the same content (gradecache.py)
    → grade the rest, each one task, here (a pool of `workers`) or on a Dask cluster
    → CSV, one feedback file per student, and optionally the class report (classreport.py)

A task carries the file's bytes, not its path, so a cluster's workers need no shared
filesystem: `grade_payload` writes them to a private temporary folder and grades them there,
then returns plain data (the report's dict and the student's scorecard text).
One broken submission never stops the batch: it gets a row with a status, an error and no
points (report.failure: "not graded" when the grader or the machine failed, graded again next
run; "rejected" when the file cannot be graded as it is).
A student with several files (`dave.ipynb` and `dave.py`) gets one graded, the notebook first,
and a note saying which, in the batch output and in their feedback.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import tempfile
import time
from pathlib import Path

from autograder.frontends import gradecache
from autograder.frontends import pool
from autograder.engine import leftovers, report
from autograder.engine.checks import UsageError
from autograder.engine.sandbox import Limits
from autograder.engine.submission import SubmissionError

SUFFIXES = (".ipynb", ".py")  # preference order: what students hand in from Jupyter first


def find_submissions(folder, ignore=(), assignment: str | None = None) -> dict[str, list[Path]]:
    """student -> candidate files, best first: `alice.ipynb` / `alice.py`, or files under
    `alice/` (with `assignment`, only under `alice/<assignment>/`, nbgrader's layout: a student
    without that folder did not hand it in). Notebooks before .py files, then the shallowest,
    then by name."""
    ignore = {Path(p).resolve() for p in ignore}
    found: dict[str, list[Path]] = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith((".", "_")) or entry.resolve() in ignore:
            continue
        if assignment is not None:
            if (entry / assignment).is_dir():
                found[entry.name] = _files(entry / assignment)
        elif entry.is_file() and entry.suffix in SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
        elif entry.is_dir():
            found.setdefault(entry.name, []).extend(_files(entry))
    return {student: sorted(files, key=_preference) for student, files in found.items()}


def course_assignments(folder) -> set[str]:
    """The lessons' ids found as <student>/<id>/ folders: nbgrader's submitted/ layout."""
    from autograder import lessons

    return {entry.name for student in Path(folder).iterdir() if student.is_dir()
            for entry in student.iterdir() if entry.is_dir() and entry.name in lessons.ids()}


def assignment_of(folder, assignment: str | None) -> str | None:
    """The assignment to grade: the one given, else the one of nbgrader's layout, if the class
    holds one (a course's submitted/ with two needs --assignment: else each student's first
    file, of either, would be graded)."""
    found = course_assignments(folder)
    if assignment is not None or not found:
        return assignment
    if len(found) > 1:
        raise UsageError(f"{folder} holds the assignments {', '.join(sorted(found))} "
                         f"(<student>/<assignment>/, nbgrader's layout): pass --assignment to "
                         f"grade one of them")
    return found.pop()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file()
            and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts)]


def _preference(path: Path):
    return SUFFIXES.index(path.suffix), len(path.parts), str(path)


def choose(files: list[Path], folder) -> tuple[Path | None, str]:
    """The file to grade and, when there was a choice, a note naming it and the ones left."""
    if len(files) < 2:
        return (files[0] if files else None), ""
    best, *others = [p.relative_to(folder).as_posix() for p in files]
    return files[0], (f"graded {best}, ignored {', '.join(others)} (one file per student: "
                      f"a notebook before a .py, then the first by name)")


def cache_path(out) -> Path:
    return Path(str(out) + ".cache.jsonl")


def grade_folder(folder, out, workers: int = 1, feedback=None, scheduler: str | None = None,
                 force: bool = False, class_report=None, lesson: str | None = None,
                 limits: Limits | None = None, children: str | None = None,
                 assignment: str | None = None) -> list[dict]:
    """Grade every submission in `folder` not graded before with the same content (all of them
    with `force`); write the CSV `out`, one feedback file each and the optional class report.
    Returns one result per student (see `grade_payload`), with "cached" telling which were
    reused from `<out>.cache.jsonl`. Without `lesson`, the one lesson the notebooks declare;
    a notebook of another lesson gets an error row, never another lesson's checks.
    `children`, how each submission gets its two child processes (see `CHILDREN`; None: the
    fastest this machine allows, see `default_children`). `assignment`: only each student's
    <student>/<assignment>/ folder (nbgrader's layout, see `assignment_of`); the lesson
    defaults to it when it names one."""
    from autograder import lessons

    feedback = Path(feedback or Path(out).with_name(Path(out).stem + "-feedback"))
    assignment = assignment_of(folder, assignment)
    submissions = find_submissions(folder, ignore=[feedback], assignment=assignment)
    if not submissions:
        raise SubmissionError(f"no submissions (.py, .ipynb or folders) in {folder}" + (
            f" for assignment {assignment}" if assignment else ""))
    chosen = {student: choose(files, folder) for student, files in submissions.items()}
    if lesson is None and assignment in lessons.ids():
        lesson = assignment
    lesson = lesson or class_lesson([path for path, _ in chosen.values() if path is not None])
    context = {"lesson": lesson, "limits": dataclasses.asdict(limits or Limits())}
    cache = gradecache.Cache(cache_path(out))
    cache.compact()
    results, todo = {}, []
    for student, (path, note) in chosen.items():
        cached = None if force else cache.get(student, _key(_payload(student, path, note,
                                                                     folder, context)))
        if cached:
            results[student] = {**cached, "cached": True}
        else:
            todo.append((student, path, note))
    kept = 0
    try:
        for result in _grade_all(todo, folder, context, workers, scheduler, children):
            if result.pop("cacheable"):
                cache.add(result["student"], result.pop("key"), result)
                kept += 1
            results[result["student"]] = {**result, "cached": False}
    except KeyboardInterrupt:  # what is in the cache is kept; no CSV of half a class
        raise pool.Interrupted(kept, len(todo) - kept, str(cache.path)) from None
    results = [results[student] for student in sorted(results)]
    _write_outputs(results, out, feedback, lesson, class_report)
    return results


def class_lesson(paths: list[Path]) -> str:
    """The lesson the class's files declare (metadata, check cells): one, or a UsageError."""
    from autograder import lessons
    from autograder.engine import submission

    found: dict[str, int] = {}
    for path in paths:
        try:
            lesson = lessons.detect(submission.load(path)).id
        except (UsageError, SubmissionError):
            continue  # graded later, where its own error is its row's
        found[lesson] = found.get(lesson, 0) + 1
    if len(found) == 1:
        return next(iter(found))
    counts = ", ".join(f"{n} of lesson {lesson}" for lesson, n in sorted(found.items()))
    raise UsageError(f"the submissions are {counts}: pass --lesson to say which lesson this "
                     f"class is graded as" if found else "no submission says which lesson it "
                     f"belongs to: pass --lesson")


def _payload(student: str, path: Path | None, note: str, folder, context: dict) -> dict:
    """What travels to the grading process: plain data only, the file's bytes included."""
    payload = {"student": student, "note": note, "file": "", "data": b"", "problem": "",
               **context}
    if path is not None:
        payload["file"] = path.relative_to(folder).as_posix()
        try:
            payload["data"] = path.read_bytes()
        except OSError as error:
            payload["problem"] = f"could not read {payload['file']}: {error}"
    return payload


def _key(payload: dict) -> str:
    return gradecache.key(payload["data"], **{k: v for k, v in payload.items() if k != "data"})


def grade_payload(payload: dict, warm=None, children: str = "each") -> dict:
    """Grade one submission where this runs (a thread here, or a Dask worker): plain data in,
    plain data out. Never raises: a failure is this student's result, never the batch's end.
    `warm`: where the children come from (a warm.Warm pool or a zygote.Forks); else with
    `children` "fork", the fork server of this process (a Dask worker's), started once."""
    start = time.perf_counter()
    student, note = payload["student"], payload["note"]
    if warm is None and children == "fork":
        from autograder.engine import zygote

        warm = zygote.shared(payload["lesson"], Limits(**payload["limits"]))
    try:
        with leftovers.PrivateDir("submission") as private:  # swept if we are killed
            graded = _grade_bytes(payload, Path(private), warm)
        result = {"row": report.gradebook_row(student, graded), "report": graded.to_dict(),
                  "feedback": report.scorecard(graded, student=True) + "\n", "cacheable": True}
    except Exception as error:
        status, message = report.failure(error)
        lines = [student] + ([f"note: {note}"] if note else []) + [message]
        result = {"row": report.gradebook_row(student, error=message, status=status),
                  "report": None, "feedback": "\n".join(lines) + "\n",
                  # the file's fault is the same next time; the grader's is graded again
                  "cacheable": status == report.REJECTED}
    result.update(student=student, file=payload["file"], note=note, key=_key(payload),
                  seconds=round(time.perf_counter() - start, 3), worker=pool.where(),
                  grader=gradecache.grader_version())
    return json.loads(json.dumps(result, default=str))  # plain JSON data, whatever it held


def _grade_bytes(payload: dict, private: Path, warm=None):
    from autograder.engine.grading import grade

    if payload["problem"]:
        raise SubmissionError(payload["problem"])
    if not payload["file"]:
        raise SubmissionError("no .ipynb or .py file in the student's folder")
    path = private / Path(payload["file"]).name
    path.write_bytes(payload["data"])
    graded = grade(path, payload["lesson"], limits=Limits(**payload["limits"]), warm=warm,
                   progress=pool.checkpoint)  # Ctrl-C: stops at the next step
    graded.submission = payload["file"]
    if payload["note"]:
        graded.notes.insert(0, payload["note"])
    return graded


# --- the tasks run in a local pool or on a Dask cluster (pool.py) -------------------------------


CHILDREN = {
    "fork": "forked from one fork server per grading process (torch imported once), each in "
            "a jail of its own: the fastest; needs root and a writable cgroup (engine/zygote.py)",
    "ahead": "started in bubblewrap ahead of need by a background thread (engine/warm.py)",
    "each": "started in bubblewrap when the submission comes",
}


def default_children(workers: int, scheduler: str | None = None,
                     cores: int | None = None) -> str:
    """The fork server where it can run (here, or on each Dask worker, which checks again);
    else children started ahead where a core is left for them (see `starts_ahead`)."""
    from autograder.engine import zygote

    if not zygote.unsupported():
        return "fork"
    return "ahead" if starts_ahead(workers, cores) and not scheduler else "each"


def starts_ahead(workers: int, cores: int | None = None) -> bool:
    """Whether children started ahead pay off: only with a core the grading threads leave
    free. Measured on 2 cores (benchmarks/bench_grader.py --no-dask, quiet machine): 1 worker
    15.9 vs 12.4 submissions/min (x1.28), 2 workers 16.0 vs 19.5 (x0.82): with no free core,
    starting the next children slows the ones being graded."""
    return workers < (cores or os.cpu_count() or 1)


def _grade_all(todo: list, folder, context: dict, workers: int, scheduler: str | None,
               children: str | None = None):
    """Yield one result per (student, path, note) of `todo`, as they finish."""
    chosen = {student: (path, note) for student, path, note in todo}

    def prepare(student):
        return _payload(student, *chosen[student], folder, context)

    children = children or default_children(workers, scheduler)
    if children not in CHILDREN:
        raise UsageError(f"children: one of {', '.join(CHILDREN)}, not {children!r}")
    local = None if scheduler or not todo else children  # a cluster's workers start their own
    with _source(context, local, workers, len(todo)) as source:
        # here, `source` is what there is (None: the fork server could not start, each child
        # starts in bubblewrap); a cluster's workers start their own fork server
        task = functools.partial(grade_payload, warm=source,
                                 children=children if scheduler else "each")
        for student, future in pool.run(task, list(chosen), prepare, workers, scheduler):
            yield _result(future, student)


def _source(context: dict, children: str | None, workers: int, count: int):
    """Here: the fork server, or a jail and a clean child started ahead for each of `workers`
    grading threads (see engine/warm.py); else (each, or on a cluster) nothing."""
    from autograder.engine import zygote
    from autograder.engine.warm import Warm

    try:
        limits = Limits(**context["limits"])
        if children == "fork":
            return _closing(zygote.Forks.start(context["lesson"], limits))
        if children == "ahead":
            return Warm(context["lesson"], limits, workers, expected=count)
    except UsageError:  # an unknown lesson: each submission's row says so
        pass
    return contextlib.nullcontext()


@contextlib.contextmanager
def _closing(forks):
    """The started fork server (or None where it could not start), closed after the batch."""
    try:
        yield forks
    finally:
        if forks is not None:
            forks.close()


def _result(future, student: str) -> dict:
    """The future's result, checked: a worker that died, or that runs another version of the
    grader, gives an error row that is not cached (the next run grades it again)."""
    try:
        result = future.result()
    except Exception as error:  # e.g. distributed.KilledWorker: a worker died on this task
        message = f"not graded: the grading process failed ({type(error).__name__}: {error})"
        return {"student": student, "row": report.gradebook_row(student, error=message),
                "report": None, "feedback": f"{student}\n{message}\n", "cacheable": False,
                "file": "", "note": "", "seconds": 0.0, "worker": "", "grader": ""}
    if result["grader"] != gradecache.grader_version():
        message = (f"not graded: worker {result['worker']} runs another version of the "
                   f"grader ({result['grader']}, here {gradecache.grader_version()}); install "
                   f"this same version of the course package on every worker")
        result.update(row=report.gradebook_row(student, error=message), report=None,
                      feedback=f"{student}\n{message}\n", cacheable=False)
    return result


# --- outputs ---------------------------------------------------------------------------------------


def _write_outputs(results: list[dict], out, feedback: Path, lesson: str, class_report) -> None:
    feedback.mkdir(parents=True, exist_ok=True)
    for result in results:
        (feedback / f"{result['student']}.txt").write_text(result["feedback"])
    report.write_gradebook([result["row"] for result in results], out, lesson)
    if class_report:
        from autograder.frontends import classreport

        classreport.write([classreport.entry(result) for result in results], class_report,
                          title=f"{lesson}: {Path(out).name}")
