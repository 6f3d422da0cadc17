"""What the jail costs per submission: jailed vs plain child, in one run, alternating.

    .venv/bin/python benchmarks/bench_jail.py [--rounds 5]

For each round it starts a sandbox child for the reference submission with the jail and
without it (AUTOGRADER_NO_JAIL), and times (a) start-up: the child imports torch, defines the
submission and reports ready, (b) a whole `--only model` grading. It prints the medians and
the difference, the jail's added cost (goal: at most 0.5 s per submission on a 2-core
machine). Figures, not assertions: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autograder import jail as jails  # noqa: E402
from autograder import submission  # noqa: E402
from autograder.engine.grading import grade  # noqa: E402
from autograder.engine.sandbox import Limits, Sandbox  # noqa: E402

REFERENCE = REPO / "tests" / "submissions" / "reference_min.py"


def use_jail(on: bool) -> str:
    if on:
        os.environ.pop("AUTOGRADER_NO_JAIL", None)
    else:
        os.environ["AUTOGRADER_NO_JAIL"] = "1"
    jails.isolation.cache_clear()
    return jails.isolation().mode


def startup_seconds() -> float:
    plan = submission.load(REFERENCE).plan()
    start = time.perf_counter()
    with Sandbox(plan, "01_mnist_dnn", Limits()) as box:
        assert box._wait_ready() is None, box.start_error
        return time.perf_counter() - start


def model_grading_seconds() -> float:
    start = time.perf_counter()
    report = grade(REFERENCE, only="model")
    assert report.passed, [r.message for r in report.results if not r.passed]
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    times = {(mode, what): [] for mode in (True, False) for what in ("startup", "grade")}
    modes = {}
    for _ in range(args.rounds):
        for on in (True, False):
            modes[on] = use_jail(on)
            times[on, "startup"].append(startup_seconds())
            times[on, "grade"].append(model_grading_seconds())
    use_jail(True)
    print(f"isolation here: {jails.isolation().describe()}")
    print(f"{'median of ' + str(args.rounds):>14} {'jail':>8} {'no jail':>8} {'added':>8}")
    for what in ("startup", "grade"):
        jail, plain = (statistics.median(times[on, what]) for on in (True, False))
        print(f"{what + ' (s)':>14} {jail:8.2f} {plain:8.2f} {jail - plain:+8.2f}")
    if modes[True] != "jail":
        print("warning: no jail could start here, both columns ran without one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
