"""Command line: each command parses its arguments and hands them to one function.

    python -m autograder grade SUBMISSION [--lesson L] [--json OUT] [--gradescope OUT]
                               [--only GROUP_OR_ID] [--time-limit S] [--memory-limit MB]
    python -m autograder batch DIR --out grades.csv [--workers N | --scheduler tcp://HOST:PORT]
                               [--assignment ID] [--feedback DIR] [--report report.html]
                               [--force] ...
    python -m autograder course build|grade ...   (the nbgrader course, see nbgrader/course.py)

grade exits 0 when every check passed, 1 when some failed, 2 when it could not grade.
batch exits 0 when every submission was graded, 1 when some could not be, 2 on bad input.
Bad arguments (limits <= 0, an output file that cannot be written) stop before any grading.
"""
from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import traceback
from pathlib import Path

from autograder.engine import jail
from autograder.engine import report as reports
from autograder import lessons
from autograder.engine.checks import UsageError
from autograder.engine.sandbox import Limits, SandboxError
from autograder.engine.submission import SubmissionError


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade one .py or .ipynb submission")
    commands.add_parser("course", add_help=False,
                        help="the nbgrader course: `course build`, `course grade --assignment "
                             "ID` (see `python -m autograder course --help`)")
    grade.add_argument("submission")
    grade.add_argument("--json", help="write the full report as JSON to this file")
    grade.add_argument("--gradescope", help="write a Gradescope results.json to this file")
    grade.add_argument("--only", help="a group (model, fit, accuracy, hidden) or a check id")
    batch = commands.add_parser("batch", help="grade a folder: one file or folder per student")
    batch.add_argument("folder")
    batch.add_argument("--out", required=True, help="the CSV gradebook to write")
    batch.add_argument("--workers", type=int, default=1,
                       help="submissions graded at once on this machine")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on a Dask cluster instead (tcp://HOST:PORT of its scheduler)")
    batch.add_argument("--report", help="also write the class report (one HTML file) here")
    batch.add_argument("--force", action="store_true",
                       help="grade every submission again, even those unchanged since the "
                            "last run (kept in <out>.cache.jsonl)")
    batch.add_argument("--assignment", metavar="ID",
                       help="grade only each student's <student>/ID/ folder (nbgrader's "
                            "submitted/ layout, e.g. course/submitted); the lesson defaults to "
                            "ID when ID is a lesson's id")
    batch.add_argument("--feedback", help="folder for per-student feedback (default: "
                                          "<out>-feedback next to the CSV)")
    batch.add_argument("--children", choices=["fork", "ahead", "each"],
                       help="how each submission's two jailed processes start: fork (from a "
                            "fork server, torch imported once; needs root and a writable "
                            "cgroup), ahead (in bubblewrap, before they are needed) or each "
                            "(in bubblewrap, when needed) [default: the fastest available]")
    for command in (grade, batch):
        command.add_argument("--lesson", choices=lessons.ids(),
                             help="the lesson to grade as (default: the one the notebook "
                                  "declares in its metadata and check cells)")
        command.add_argument("--time-limit", type=float, default=Limits.time_s,
                             help="seconds per probe (the training probe gets 3x) "
                                  "[default %(default)s]")
        command.add_argument("--memory-limit", type=int, default=Limits.memory_mb,
                             help="MB of memory for the student's jail [default %(default)s]")
        command.add_argument("--budget", type=float, default=Limits.budget_s,
                             help="seconds of the submission's own running time (its CPU, or the wall "
                                  "clock less its waits for a busy CPU; the grader's start-up "
                                  "not counted), then it is graded on what finished "
                                  "[default %(default)s]")
    batch.add_argument("--no-jail", action="store_true",
                       help="grade where no jail can start (macOS, Windows, no user "
                            "namespaces): only if you trust every submission")
    return main


def check_arguments(args) -> None:
    """Refuse what would fail or mislead only after minutes of grading: raise UsageError."""
    if not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise UsageError(f"--time-limit must be a positive number of seconds, "
                         f"got {args.time_limit:g}")
    if args.memory_limit <= 0:
        raise UsageError(f"--memory-limit must be a positive number of MB, got {args.memory_limit}")
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise UsageError(f"--budget must be a positive number of seconds, got {args.budget:g}")
    if args.command == "grade":
        for option in ("json", "gradescope"):
            check_output(f"--{option}", getattr(args, option), args.submission)
    else:
        folder = Path(args.folder)
        if not folder.is_dir():
            raise UsageError(f"{folder} is a file: grade it with `python -m autograder grade "
                             f"{folder}`" if folder.is_file() else f"no such folder: {folder}")
        if args.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {args.workers}")
        if args.scheduler and args.workers != 1:
            raise UsageError("--workers sets the pool on this machine; with --scheduler the "
                             "cluster's workers grade: drop one of the two")
        check_output("--out", args.out, None)
        check_output("--report", args.report, None)
        if args.feedback and Path(args.feedback).exists() and not Path(args.feedback).is_dir():
            raise UsageError(f"--feedback {args.feedback} is a file, not a folder")


def check_output(option: str, path, submission) -> None:
    """An output file must be writable where it is named, and never the submission itself."""
    if path is None:
        return
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: folder {parent} is not writable")
    if submission is not None and path.resolve() == Path(submission).resolve():
        raise UsageError(f"{option} {path} would overwrite the submission")


def grade_command(args) -> int:
    from autograder.engine.grading import grade

    limits = Limits(time_s=args.time_limit, memory_mb=args.memory_limit, budget_s=args.budget)
    report = grade(args.submission, args.lesson, only=args.only, limits=limits, progress=say)
    print(reports.scorecard(report))
    if args.json:
        reports.write_json(report, args.json)
    if args.gradescope:
        reports.write_gradescope(report, args.gradescope)
    return 0 if report.passed else 1


def say(text: str) -> None:
    """A step of grading, as it starts, on stderr: a minute of silence looks like a hang."""
    print(f"grading: {text}", file=sys.stderr, flush=True)


def batch_command(args) -> int:
    from autograder.frontends.batch import grade_folder

    limits = Limits(time_s=args.time_limit, memory_mb=args.memory_limit, budget_s=args.budget,
                    require_jail=not args.no_jail)
    if not args.scheduler:  # a cluster's workers check for themselves (Limits.require_jail)
        jail.require(untrusted_ok=args.no_jail)
    results = grade_folder(args.folder, args.out, workers=args.workers, feedback=args.feedback,
                           scheduler=args.scheduler, force=args.force,
                           class_report=args.report, lesson=args.lesson, limits=limits,
                           children=args.children, assignment=args.assignment)
    print("\n".join(batch_summary(results, args.out)))
    if args.report:
        print(f"class report → {args.report}")
    return 0 if all(r["row"]["status"] == reports.GRADED for r in results) else 1


def batch_summary(results: list[dict], out) -> list[str]:
    """What the instructor reads: how many were graded, each note, then the submissions that
    were not, apart: the grader's failures (run again) and the files that cannot be graded."""
    count = collections.Counter(r["row"]["status"] for r in results)
    reused = sum(r["cached"] for r in results)
    lines = [f"graded {count[reports.GRADED]} of {len(results)} submissions → {out} "
             f"({len(results) - reused} graded now, {reused} unchanged since the last run)"]
    lines += [f"  {r['student']}: {r['note']}" for r in results if r.get("note")]
    for status, heading in ((reports.NOT_GRADED, "not graded: the grader or the machine failed, "
                             "not the student; run the same command again to grade them"),
                            (reports.REJECTED, "could not grade the file handed in (their "
                                               "feedback file says why)")):
        if count[status]:
            lines.append(f"{count[status]} {heading}:")
            lines += [f"  {r['student']}: {r['row']['error']}" for r in results
                      if r["row"]["status"] == status]
    return lines


def interrupted(error: KeyboardInterrupt) -> None:
    """Say what an interrupted run kept, then quit now: a second Ctrl-C left grading threads
    running, which an ordinary exit would wait for (their jails end with this process)."""
    print(f"\n{error}" if str(error) else "\ninterrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["course"]:  # the nbgrader course, under a short name
        from autograder.frontends.nbgrader import course

        return course.main(argv[1:], prog="python -m autograder course") or 0
    args = parser().parse_args(argv)
    try:
        check_arguments(args)
        return {"grade": grade_command, "batch": batch_command}[args.command](args)
    except KeyboardInterrupt as error:  # Ctrl-C: say what was kept, not a traceback
        interrupted(error)
    except (SubmissionError, UsageError, OSError, jail.NoJail, SandboxError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
    except Exception:  # a grader bug: say so, and never let it pass for a student's failure
        traceback.print_exc()
        print("autograder: internal error, please report it", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
