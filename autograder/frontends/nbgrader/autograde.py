"""nbgrader's `autograde`, one student per task: N students at once here, or on a Dask cluster.

nbgrader autogrades students one after another, and its gradebook is one SQLite file that
concurrent `autograde` processes would have to share. Here each student is autograded by
nbgrader's own command in a private copy of the course: the config, source/<assignment>/,
the student's submitted/ folder and a copy of the gradebook without the other students'
submissions. The copy travels as bytes, so a cluster's workers need no shared filesystem.
Back in the course folder, one student at a time, the student's rows of the private gradebook
replace theirs in the course's gradebook (one SQLite transaction) and their autograded/ folder
replaces theirs, so `nbgrader generate_feedback` and `nbgrader export` work as after a serial
`nbgrader autograde`. A student whose submission, course source and grader are unchanged since
their last autograde is not graded again (the cache is DIR/autograde-cache.jsonl).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import closing
from pathlib import Path

from autograder.engine import leftovers, report
from autograder.frontends import gradecache
from autograder.frontends import pool

TIMEOUT_S = 3600         # one student's whole autograde; each cell has its own, shorter timeout
RETURN_CAP = 64 << 20    # bytes of a student's autograded folder brought back (notebooks first)
LOG_TAIL = 8000          # characters of nbgrader's log kept for a student
SUBMISSION_TABLES = ("submitted_assignment", "submitted_notebook", "grade", "comment")
# a check's line in a test cell's output: "✗ fit_reshuffles [0/1] a new order every epoch"
CHECK_LINE = re.compile(r"^([✓✗]) (\w+)(?: \(hidden\))? \[[\d.]+/[\d.]+\] ?(.*)$")
SHARED_HINT = re.compile(r"^\(all \d+ above\) ")


def students(course_dir: Path, assignment: str) -> list[str]:
    return sorted({p.parent.parent.name for p in
                   course_dir.glob(f"submitted/*/{assignment}/*.ipynb")})


def autograde(course_dir, assignment: str, workers: int = 1, scheduler: str | None = None,
              force: bool = False) -> dict[str, dict]:
    """Autograde every student whose submission changed (all with `force`); return
    student -> {"seconds", "cached", "status", "error", "previous"}: status is report.GRADED,
    NOT_GRADED (the grader's failure, graded again next run) or REJECTED (the file handed in);
    a student who was not graded has no score in the gradebook any more, whatever an earlier
    autograde gave: "previous" says what it was ("" when none)."""
    course_dir = Path(course_dir)
    cache = gradecache.Cache(course_dir / "autograde-cache.jsonl")
    cache.compact()
    outcomes, keys, todo = {}, {}, []
    for student in students(course_dir, assignment):
        keys[student] = _key(course_dir, assignment, student)
        cached = None if force else cache.get(student, keys[student])
        misnamed = misnamed_notebook(course_dir, assignment, student)
        if misnamed:  # nbgrader would skip the file and fail with "No notebooks found"
            outcomes[student] = _not_graded(course_dir, assignment, student, report.REJECTED,
                                            misnamed)
        elif cached and (course_dir / "autograded" / student / assignment).is_dir():
            outcomes[student] = {"status": report.GRADED, "previous": "", **cached,
                                 "cached": True}
        else:
            todo.append(student)

    def prepare(student):
        return _payload(course_dir, assignment, student)

    kept = 0
    try:
        for student, future in pool.run(autograde_payload, todo, prepare, workers, scheduler,
                                        desc="autograding"):
            outcome = _merge(course_dir, assignment, student, future)
            if outcome["status"] == report.GRADED:  # a failure is tried again next run
                cache.add(student, keys[student], outcome)
                kept += 1
            outcomes[student] = {**outcome, "cached": False}
    except KeyboardInterrupt:  # each student merged so far is kept, in the gradebook too
        raise pool.Interrupted(kept, len(todo) - kept, str(cache.path)) from None
    record_failures(course_dir, assignment, outcomes)
    return outcomes


def _key(course_dir: Path, assignment: str, student: str) -> str:
    """What a student's autograde depends on: their files, the course's source and config."""
    files = sorted([course_dir / "nbgrader_config.py",
                    *(course_dir / "source" / assignment).rglob("*"),
                    *(course_dir / "submitted" / student / assignment).rglob("*")])
    data = b"".join(p.relative_to(course_dir).as_posix().encode() + b"\0" + p.read_bytes()
                    for p in files if p.is_file())
    return gradecache.key(data, assignment=assignment, student=student)


# --- the task: plain data in, plain data out ----------------------------------------------------


def _payload(course_dir: Path, assignment: str, student: str) -> dict:
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
        tar.add(course_dir / "nbgrader_config.py", "nbgrader_config.py")
        tar.add(course_dir / "source" / assignment, f"source/{assignment}")
        tar.add(course_dir / "submitted" / student / assignment,
                f"submitted/{student}/{assignment}")
        gradebook = _private_gradebook(course_dir / "gradebook.db", student)
        info = tarfile.TarInfo("gradebook.db")
        info.size = len(gradebook)
        tar.addfile(info, io.BytesIO(gradebook))
    return {"student": student, "assignment": assignment, "bundle": bundle.getvalue()}


def autograde_payload(payload: dict) -> dict:
    """Runs where the student is graded (a thread here, or a Dask worker): unpack the private
    course, run `nbgrader autograde ASSIGNMENT --student S --force` in it, return its
    gradebook and autograded folder as bytes."""
    start = time.perf_counter()
    student, assignment = payload["student"], payload["assignment"]
    with leftovers.PrivateDir("autograde") as private:  # swept if this process is killed
        private = Path(private)
        with tarfile.open(fileobj=io.BytesIO(payload["bundle"])) as tar:
            tar.extractall(private, filter="data")
        returncode, log = _nbgrader(private, "autograde", assignment, "--student", student,
                                    "--force")
        return {"student": student, "returncode": returncode, "log": log[-LOG_TAIL:],
                "gradebook": (private / "gradebook.db").read_bytes(),
                "autograded": _pack(private / "autograded" / student, student),
                "seconds": round(time.perf_counter() - start, 3), "worker": pool.where(),
                "grader": gradecache.grader_version()}


def _nbgrader(course_dir: Path, *args) -> tuple[int, str]:
    """Run nbgrader in `course_dir`; on timeout, end it and every process it started."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=course_dir,
                               env={**os.environ, "PATH": path}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        out = _wait(process)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        return -1, out.decode(errors="replace") + f"\nautograde took over {TIMEOUT_S} s: stopped"
    finally:
        try:  # the student's kernel and anything it left behind
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()  # reaped here, also when Ctrl-C stopped it
    return process.returncode, out.decode(errors="replace")


def _wait(process) -> bytes:
    """Its output, once it has ended: TimeoutExpired after TIMEOUT_S; after Ctrl-C (pool.STOP)
    it is stopped (its private course is dropped, nothing of it kept)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        pool.checkpoint()
        try:
            return process.communicate(timeout=min(1.0, max(0.0, deadline - time.monotonic())))[0]
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise


def _pack(folder: Path, student: str) -> bytes:
    """A tar of the autograded folder: notebooks first, the rest while under RETURN_CAP."""
    data, total = io.BytesIO(), 0
    if not folder.is_dir():
        return b""
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (p.suffix != ".ipynb", str(p)))
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for path in files:
            total += path.stat().st_size
            if total <= RETURN_CAP or path.suffix == ".ipynb":
                tar.add(path, f"{student}/{path.relative_to(folder).as_posix()}")
    return data.getvalue()


# --- back in the course folder: one student at a time --------------------------------------------


# the grader's own line in nbgrader's log (GradeTestCells raised it): what it means
GRADER_ERROR = re.compile(r"\b(UsageError|SubmissionError|GraderUnavailable|SandboxError|NoJail)"
                          r": (.*)$")
# nbgrader's own words for a notebook file it could not read
UNREADABLE = re.compile(r"\b(NotJSONError|JSONDecodeError|ValidationError|"
                        r"Notebook does not appear to be JSON)\b:? ?(.*)$")


def what_failed(log: str) -> list[str]:
    """The lines of nbgrader's log that say why a student's autograde failed."""
    lines = [line.strip() for line in log.splitlines()]
    ours = [line for line in lines if GRADER_ERROR.search(line)][-2:]
    return ours or [line for line in lines if "ERROR" in line or "Error:" in line][-4:]


def failure_of(log: str) -> tuple[str, str]:
    """(status, message) of a student whose nbgrader autograde failed, from its log: the
    grader's own line when there is one (the file's fault, or the grader's: report.failure's
    words), a notebook nbgrader could not read, else nbgrader's failure, never the student's."""
    from autograder.engine import jail, sandbox, submission
    from autograder.engine.checks import UsageError

    kinds = {"UsageError": UsageError, "SubmissionError": submission.SubmissionError,
             "GraderUnavailable": sandbox.GraderUnavailable, "NoJail": jail.NoJail,
             "SandboxError": sandbox.SandboxError}
    lines = [line.strip() for line in log.splitlines()]
    for line in reversed(lines):
        found = GRADER_ERROR.search(line)
        if found:  # as if GradeTestCells' exception had reached us
            kind, said = found.groups()
            return report.failure(kinds[kind](said))
    for line in reversed(lines):
        found = UNREADABLE.search(line)
        if found:
            return report.REJECTED, (f"could not grade: the notebook file cannot be read "
                                     f"({found.group(0)[:300]}): it is damaged")
    said = " / ".join(what_failed(log)) or "see its log"
    return report.NOT_GRADED, f"not graded: nbgrader could not autograde this notebook ({said})"


def _merge(course_dir: Path, assignment: str, student: str, future) -> dict:
    """Record a finished task in the course: gradebook rows and autograded folder. When
    nbgrader failed, what it recorded is kept (the submission and its time), without a score:
    the gradebook never keeps the score of an earlier file, or of an earlier grading of this
    one, for a submission that was not graded (see `_not_graded`)."""
    try:
        result = future.result()
        if result["grader"] != gradecache.grader_version():
            raise RuntimeError(f"worker {result['worker']} runs another version of the grader; "
                               f"install this same version of the course package on every worker")
        previous = score_of(course_dir, assignment, student)
        _replace_autograded(course_dir, student, result["autograded"])
        with tempfile.TemporaryDirectory() as scratch:
            theirs = Path(scratch) / "gradebook.db"
            theirs.write_bytes(result["gradebook"])
            merge_gradebook(course_dir / "gradebook.db", theirs, assignment, student)
    except Exception as error:  # this student's failure, never the class's end
        return _not_graded(course_dir, assignment, student, report.NOT_GRADED,
                           f"not graded: the grading process failed ({type(error).__name__}: "
                           f"{error})")
    if result["returncode"] != 0:
        print(f"\nnbgrader autograde failed for {student} (exit {result['returncode']}):\n"
              f"{result['log']}", file=sys.stderr)
        return _not_graded(course_dir, assignment, student, *failure_of(result["log"]),
                           previous=previous)
    return {"seconds": result["seconds"], "worker": result["worker"], "status": report.GRADED,
            "error": "", "previous": ""}


def _not_graded(course_dir: Path, assignment: str, student: str, status: str, error: str,
                previous: str | None = None) -> dict:
    """The outcome of a student who was not graded; whatever score the gradebook held for them
    (`previous`, else read now) is removed, and said."""
    if previous is None:
        previous = score_of(course_dir, assignment, student)
    forget_scores(course_dir / "gradebook.db", assignment, student)
    shutil.rmtree(course_dir / "autograded" / student / assignment, ignore_errors=True)
    return {"seconds": 0.0, "worker": "", "status": status, "error": error,
            "previous": previous, "cached": False}


FAILURES = "autograde-failures.json"  # assignment -> student -> {"status", "error"}, of the
                                     # last `course grade`: what GradesExport writes for them


def record_failures(course_dir: Path, assignment: str, outcomes: dict) -> None:
    """Keep the students of `assignment` who were not graded this time (and only them)."""
    found = failures(course_dir)
    found[assignment] = {student: {"status": o["status"], "error": o["error"]}
                         for student, o in sorted(outcomes.items())
                         if o["status"] != report.GRADED}
    (Path(course_dir) / FAILURES).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


def failures(course_dir) -> dict:
    path = Path(course_dir) / FAILURES
    return json.loads(path.read_text()) if path.exists() else {}


def misnamed_notebook(course_dir: Path, assignment: str, student: str) -> str:
    """Why the student's folder cannot be autograded as handed in ("" when it can): no
    <assignment>.ipynb, only notebooks of another name, which nbgrader skips. Names the lesson
    each of them is (a notebook of another lesson under its own name, say)."""
    from autograder import lessons
    from autograder.engine import submission
    from autograder.engine.checks import UsageError

    folder = course_dir / "submitted" / student / assignment
    if (folder / f"{assignment}.ipynb").is_file():
        return ""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            lesson = lessons.detect(submission.load(path)).id
            found.append(f"{path.name}, a notebook of lesson {lesson}")
        except (UsageError, submission.SubmissionError):
            found.append(f"{path.name}, a notebook of no lesson the grader knows")
    return (f"no {assignment}.ipynb was handed in for assignment {assignment}, only "
            f"{'; '.join(found)}: hand in your notebook of lesson {assignment}, named "
            f"{assignment}.ipynb")


def _replace_autograded(course_dir: Path, student: str, packed: bytes) -> None:
    autograded = course_dir / "autograded"
    autograded.mkdir(exist_ok=True)
    if not packed:  # nbgrader left no autograded folder (it removes it when it fails)
        shutil.rmtree(autograded / student, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(dir=autograded, prefix=".incoming-") as incoming:
        with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
            tar.extractall(incoming, filter="data")  # no link or path out of `incoming`
        shutil.rmtree(autograded / student, ignore_errors=True)
        if (Path(incoming) / student).is_dir():  # else nbgrader's folder held no file
            os.replace(Path(incoming) / student, autograded / student)


def _private_gradebook(main_db: Path, student: str) -> bytes:
    """A copy of the gradebook without the submissions of other students."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "gradebook.db"
        with closing(sqlite3.connect(main_db)) as source, \
                closing(sqlite3.connect(copy, isolation_level=None)) as target:
            source.backup(target)
            target.execute("BEGIN")
            _delete_submissions(target, "main", "sa.student_id != ?", (student,))
            target.execute("COMMIT")
            target.execute("VACUUM")
        return copy.read_bytes()


def merge_gradebook(main_db: Path, theirs_db: Path, assignment: str, student: str) -> None:
    """In one transaction: the student's submission of `assignment` in `main_db` becomes the
    one in `theirs_db` (a gradebook that was copied from it, then autograded)."""
    connection = sqlite3.connect(main_db, timeout=60, isolation_level=None)
    try:
        connection.execute("ATTACH DATABASE ? AS theirs", (str(theirs_db),))
        _check_same_tables(connection)
        where, args = "a.name = ? AND sa.student_id = ?", (assignment, student)
        connection.execute("BEGIN IMMEDIATE")
        _delete_submissions(connection, "main", where, args)
        connection.execute("INSERT OR IGNORE INTO main.student SELECT * FROM theirs.student "
                           "WHERE id = ?", (student,))
        for table, ids in _submission_ids("theirs", where).items():
            connection.execute(f"INSERT INTO main.{table} SELECT * FROM theirs.{table} "
                               f"WHERE {ids}", args)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def score_of(course_dir: Path, assignment: str, student: str) -> str:
    """The student's autograded score of `assignment` in the course's gradebook ("25/25"), ""
    when it holds none."""
    from nbgrader.api import Gradebook

    db = Path(course_dir) / "gradebook.db"
    if not db.exists():
        return ""
    with Gradebook(f"sqlite:///{db}") as gradebook:
        status, submission = submission_state(gradebook, assignment, student)
        return f"{submission.score:g}/{submission.max_score:g}" if status == "graded" else ""


def submission_state(gradebook, assignment: str, student: str):
    """(status, submission or None) in an open nbgrader Gradebook: "no submission", "not
    graded" (its test cells have no score: its autograde failed, see `_not_graded`) or
    "graded"."""
    from nbgrader.api import MissingEntry

    try:
        submission = gradebook.find_submission(assignment, student)
    except MissingEntry:
        return "no submission", None
    grades = [g for notebook in submission.notebooks for g in notebook.grades]
    if all(g.auto_score is None and g.manual_score is None for g in grades):
        return "not graded", submission
    return "graded", submission


def forget_scores(main_db: Path, assignment: str, student: str) -> None:
    """The student's submission of `assignment` keeps its time but loses its autograded
    points (NULL, which nbgrader shows as not graded, and GradesExport as blank)."""
    if not Path(main_db).exists():
        return
    connection = sqlite3.connect(main_db, timeout=60, isolation_level=None)
    try:
        grades = _submission_ids("main", "a.name = ? AND sa.student_id = ?")["grade"]
        connection.execute(f"UPDATE main.grade SET auto_score = NULL WHERE {grades}",
                           (assignment, student))
    finally:
        connection.close()


def _submission_ids(schema: str, where: str) -> dict[str, str]:
    """table -> SQL condition selecting the rows of the submissions matched by `where`."""
    submissions = (f"SELECT sa.id FROM {schema}.submitted_assignment sa JOIN "
                   f"{schema}.assignment a ON sa.assignment_id = a.id WHERE {where}")
    notebooks = f"SELECT id FROM {schema}.submitted_notebook WHERE assignment_id IN ({submissions})"
    return {"submitted_assignment": f"id IN ({submissions})",
            "submitted_notebook": f"assignment_id IN ({submissions})",
            "grade": f"notebook_id IN ({notebooks})", "comment": f"notebook_id IN ({notebooks})"}


def _delete_submissions(connection, schema: str, where: str, args: tuple) -> None:
    ids = _submission_ids(schema, where)
    for table in reversed(SUBMISSION_TABLES):  # children first
        connection.execute(f"DELETE FROM {schema}.{table} WHERE {ids[table]}", args)


def _check_same_tables(connection) -> None:
    """Rows are copied column by column: both gradebooks must have the same tables."""
    def tables(schema):
        return connection.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE "
                                  f"type = 'table' ORDER BY name").fetchall()
    if tables("main") != tables("theirs"):
        raise RuntimeError("the autograded gradebook's tables differ from the course's: not "
                           "merged (was nbgrader upgraded during grading?)")


# --- what the class report shows (classreport.py) --------------------------------------------------


def class_entries(course_dir, assignment: str, outcomes: dict) -> list[dict]:
    """A class report entry per student: points from the gradebook, checks from the test
    cells' outputs in autograded/, time from the task."""
    from nbgrader.api import Gradebook, MissingEntry

    course_dir, entries = Path(course_dir), []
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        most = gradebook.find_assignment(assignment).max_score
        for student, outcome in sorted(outcomes.items()):
            graded = outcome.get("status", report.GRADED) == report.GRADED
            try:
                score = gradebook.find_submission(assignment, student).score if graded else None
            except MissingEntry:
                score = 0.0
            folder = course_dir / "autograded" / student / assignment
            entries.append({"student": student, "status": outcome.get("status", report.GRADED),
                            "score": score, "max_score": most, "error": outcome["error"],
                            "seconds": outcome["seconds"], "note": outcome.get("note", ""),
                            "checks": notebook_checks(folder) if graded else []})
    return entries


def notebook_checks(folder: Path) -> list[dict]:
    """The checks printed in the graded test cells of the notebooks in `folder`."""
    import nbformat

    checks = []
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                checks += card_checks("".join(o.get("text", "") for o in cell.get("outputs", [])
                                              if o.get("name") == "stdout"))
    return checks


def card_checks(text: str) -> list[dict]:
    """Parse a group's card: "✗ id [0/1] title" lines, each failing one followed by its hint
    ("    → ...", wrapped), a hint shared by failing checks in a row shown under the last."""
    checks = []
    for line in text.splitlines():
        match = CHECK_LINE.match(line)
        if match:
            mark, check_id, title = match.groups()
            checks.append({"id": check_id, "title": title, "passed": mark == "✓", "message": ""})
        elif checks and line[:1].isspace() and line.strip():
            hint = SHARED_HINT.sub("", line.strip().removeprefix("→ "))
            checks[-1]["message"] = f"{checks[-1]['message']} {hint}".strip()
    shared = ""
    for check in reversed(checks):  # the failing checks above a shared hint get it too
        if not check["passed"]:
            shared = check["message"] or shared
            check["message"] = shared or check["title"]  # older cards: "title: message"
    return checks
