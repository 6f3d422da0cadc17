"""Lesson 02's catalogue of submissions, graded through the real jail: how many the grader gets
right, by kind, as issue 18 counts them.

    python benchmarks/bench_catalogue_cnn.py [--hidden]

caught      a buggy or adversarial submission fails at least one check;
diagnosed   it fails exactly the checks its variant names, each message with the variant's
            phrase (the cause the student has);
passed      a correct submission gets every public point (--hidden: and the hidden check's,
            for the variants whose hidden verdict the catalogue states).
Each variant is tests/submissions/cnn_catalogue.py's; the tests assert the same verdicts
(tests/test_grader_cnn.py). Prints figures only, asserts nothing; the load average is printed.
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from autograder.engine.grading import grade  # noqa: E402
from autograder.engine.sandbox import Limits  # noqa: E402
from submissions.cnn_catalogue import VARIANTS, write  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def right(variant, report) -> tuple[bool, bool]:
    """(caught or passed as it should, diagnosed: exactly its checks, with its phrases)."""
    failed = report.failed_ids() - {"min_test_accuracy"}
    hidden = next((r for r in report.results if r.check.id == "min_test_accuracy"), None)
    hidden_right = variant.hidden is None or hidden.passed is variant.hidden
    phrases = all(phrase in next(r.message for r in report.results if r.check.id == check_id)
                  for check_id, phrase in variant.says.items()
                  if any(r.check.id == check_id for r in report.results))
    exact = (variant.fails is None or failed == variant.fails) and phrases and hidden_right
    if variant.kind == "correct":
        return not failed and hidden_right, exact
    return bool(failed) or (variant.hidden is False and not hidden.passed), exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", action="store_true",
                        help="also run the hidden check where the catalogue states its verdict")
    args = parser.parse_args()
    variants = [v if args.hidden else dataclasses.replace(v, hidden=None) for v in VARIANTS]
    print(f"{len(variants)} variants, {load()}", flush=True)
    start, counts = time.perf_counter(), {}
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        graded = {pool.submit(grade_one, v, Path(folder)): v for v in variants}
        for done in as_completed(graded):
            variant, report = graded[done], done.result()
            ok, exact = right(variant, report)
            kind = counts.setdefault(variant.kind, [0, 0, 0])
            kind[0], kind[1], kind[2] = kind[0] + 1, kind[1] + ok, kind[2] + exact
            verdict = "as the catalogue says" if exact else (
                f"NOT as the catalogue says: failed {sorted(report.failed_ids())}")
            print(f"  {variant.kind:>11} {variant.name:<40} {report.seconds:5.1f} s  {verdict}",
                  flush=True)
    for kind, (n, ok, exact) in counts.items():
        verb = "passed" if kind == "correct" else "caught"
        print(f"{kind:>11}: {verb} {ok}/{n}, diagnosed exactly {exact}/{n}")
    print(f"graded in {time.perf_counter() - start:.0f} s, two at a time  [{load()}]")


def grade_one(variant, folder: Path):
    return grade(write(variant.name, folder), public_only=variant.hidden is None,
                 limits=Limits(**variant.limits))


if __name__ == "__main__":
    main()
