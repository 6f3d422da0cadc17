"""Command line: each command parses its arguments and hands them to one function.

    python -m autograder grade SUBMISSION [--lesson L] [--json OUT] [--gradescope OUT]
                               [--only GROUP_OR_ID] [--time-limit S] [--memory-limit MB]
    python -m autograder batch DIR --out grades.csv [--workers N] [--feedback DIR] ...

grade exits 0 when every check passed, 1 when some failed, 2 when it could not grade.
batch exits 0 when every submission was graded, 1 when some could not be, 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from autograder import report as reports
from autograder.checks import DEFAULT_LESSON, LESSONS, UsageError
from autograder.sandbox import Limits
from autograder.submission import SubmissionError


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade one .py or .ipynb submission")
    grade.add_argument("submission")
    grade.add_argument("--json", help="write the full report as JSON to this file")
    grade.add_argument("--gradescope", help="write a Gradescope results.json to this file")
    grade.add_argument("--only", help="a group (model, fit, accuracy, hidden) or a check id")
    batch = commands.add_parser("batch", help="grade a folder: one file or folder per student")
    batch.add_argument("folder")
    batch.add_argument("--out", required=True, help="the CSV gradebook to write")
    batch.add_argument("--workers", type=int, default=1, help="submissions graded at once")
    batch.add_argument("--feedback", help="folder for per-student feedback (default: "
                                          "<out>-feedback next to the CSV)")
    for command in (grade, batch):
        command.add_argument("--lesson", default=DEFAULT_LESSON, choices=sorted(LESSONS))
        command.add_argument("--time-limit", type=float, default=Limits.time_s,
                             help="seconds per probe (the training probe gets 3x) "
                                  "[default %(default)s]")
        command.add_argument("--memory-limit", type=int, default=Limits.memory_mb,
                             help="MB of memory for the student's process [default %(default)s]")
    return main


def grade_command(args) -> int:
    from autograder.grading import grade

    limits = Limits(time_s=args.time_limit, memory_mb=args.memory_limit)
    report = grade(args.submission, args.lesson, only=args.only, limits=limits)
    print(reports.scorecard(report))
    if args.json:
        reports.write_json(report, args.json)
    if args.gradescope:
        reports.write_gradescope(report, args.gradescope)
    return 0 if report.passed else 1


def batch_command(args) -> int:
    from autograder.batch import grade_folder

    limits = Limits(time_s=args.time_limit, memory_mb=args.memory_limit)
    rows = grade_folder(args.folder, args.out, workers=args.workers, feedback=args.feedback,
                        lesson=args.lesson, limits=limits)
    broken = [row["student"] for row in rows if row.get("error")]
    print(f"graded {len(rows) - len(broken)} of {len(rows)} submissions → {args.out}")
    for student in broken:
        print(f"  could not grade {student}: see its feedback file")
    return 1 if broken else 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"grade": grade_command, "batch": batch_command}[args.command](args)
    except (SubmissionError, UsageError, OSError) as error:
        print(f"autograder: {error}", file=sys.stderr)
        return 2
    except Exception:  # a grader bug: say so, and never let it pass for a student's failure
        traceback.print_exc()
        print("autograder: internal error, please report it", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
