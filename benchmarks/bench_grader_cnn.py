"""Lesson 02's grader: the grading time of its reference, and the hidden threshold's calibration.

    python benchmarks/bench_grader_cnn.py [--median N] [--calibrate [--margin 0.01]]

--median N   grade tests/submissions/cnn_reference.py N times through the real jail, hidden
             check included, one at a time: seconds per grading and per probe (median, range).
--calibrate  the hidden check as the grader runs it — the probe that trains MyCNN with the
             lesson's fit and exports it, then the clean evaluation on the noisy, shuffled test
             set and the judge — but here, without a jail, for every correct variant of
             tests/submissions/cnn_catalogue.py (the test's own code), its "weak" ones (correct
             code below the lesson's bar) and the buggy ones whose hidden check the tests run.
             The suggested minimum is the lowest test accuracy of the correct variants minus
             --margin; the Lesson record holds the one used.

Prints figures only, asserts nothing. The machine may be shared: the load average is printed.
"""
import argparse
import ast
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

os.environ.setdefault("TQDM_DISABLE", "1")  # fit's progress bar: not a figure
import torch  # noqa: E402

from autograder.engine import probing  # noqa: E402
from autograder.engine.explain import Context  # noqa: E402
from autograder.engine.grading import evaluate, grade  # noqa: E402
from autograder.lessons import mnist_cnn  # noqa: E402
from autograder.lessons.mnist_cnn import judges  # noqa: E402
from autograder.lessons.mnist_cnn.probes import PROBES  # noqa: E402
from submissions.cnn_catalogue import VARIANTS, render, write  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def median(n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-cnn-"))
    path = write("reference", folder)
    totals, probes = [], {}
    for i in range(n):
        report = grade(path, lesson=mnist_cnn.LESSON.id)
        totals.append(report.seconds)
        for probe, seconds in report.probe_seconds.items():
            probes.setdefault(probe, []).append(seconds)
        print(f"  grading {i + 1}: {report.seconds:.1f} s, {report.score:g}/"
              f"{report.max_score:g}  [{load()}]", flush=True)
    print(f"reference, {n} gradings: median {statistics.median(totals):.1f} s "
          f"(min {min(totals):.1f}, max {max(totals):.1f})")
    for probe, seconds in probes.items():
        print(f"  {probe:>8}: median {statistics.median(seconds):.1f} s "
              f"(min {min(seconds):.1f}, max {max(seconds):.1f})")


def definitions(name: str) -> dict:
    """The variant's imports, functions and classes (the test's own code, run here)."""
    tree = ast.parse(render(name))
    kept = [node for node in tree.body if isinstance(node, (ast.Import, ast.FunctionDef,
                                                            ast.ClassDef))
            or (isinstance(node, ast.ImportFrom) and not node.module.startswith("autograder"))]
    ns = {"__name__": name}
    exec(compile(ast.Module(body=kept, type_ignores=[]), name, "exec"), ns)
    return ns


def hidden_check(name: str) -> dict:
    """The hidden check's verdict details for one variant, as the grader computes them."""
    ns = definitions(name)
    torch.set_num_threads(1)
    start = time.perf_counter()
    outcome = probing.run_probe(PROBES["hidden"], ns)
    with tempfile.TemporaryDirectory() as folder:
        evaluate(outcome, Path(folder), lambda args: probing.run_probe(
            PROBES["hidden_eval"], {}, 0, args))
    if not outcome["ok"]:
        return {"error": outcome["error"]["message"][:200]}
    verdict = judges.min_test_accuracy(outcome["data"], Context())
    return {**verdict.details, "seconds": time.perf_counter() - start,
            "message": verdict.message}


def calibrate(margin: float) -> None:
    threshold = mnist_cnn.LESSON.thresholds["min_test_accuracy"]
    print(f"hidden check: the lesson's fit, {judges.HIDDEN.epochs} epoch(s), batch "
          f"{judges.HIDDEN.batch_size}, 60,000 training images; current minimum {threshold:.2%}")
    scores = {}
    for variant in VARIANTS:
        if variant.kind not in ("correct", "weak") and variant.hidden is None:
            continue
        found = hidden_check(variant.name)
        if "test_accuracy" in found:
            if variant.kind == "correct":
                scores[variant.name] = found["test_accuracy"]
            print(f"  {variant.kind:>7} {variant.name:<32} test {found['test_accuracy']:.2%}, "
                  f"train {found['train_accuracy']:.2%}, {found['seconds']:.1f} s  [{load()}]",
                  flush=True)
        else:
            print(f"  {variant.kind:>7} {variant.name:<32} {found}", flush=True)
    lowest = min(scores.values())
    print(f"correct variants: lowest {lowest:.2%} ({min(scores, key=scores.get)}), highest "
          f"{max(scores.values()):.2%}: suggested minimum {lowest - margin:.2%} "
          f"(lowest - {margin:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--median", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--margin", type=float, default=0.01)
    args = parser.parse_args()
    print(f"PyTorch {torch.__version__}, {os.cpu_count()} CPUs, {load()}")
    if args.median:
        median(args.median)
    if args.calibrate:
        calibrate(args.margin)


if __name__ == "__main__":
    main()
