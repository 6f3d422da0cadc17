"""How fast is the grader, and where does min_test_accuracy's threshold come from?

    python benchmarks/bench_grader.py                 # per-check times + batch throughput
    python benchmarks/bench_grader.py --calibrate     # hidden check over 5 seeds

Prints figures; it is a benchmark, never run by the test suite.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from autograder.batch import grade_folder  # noqa: E402
from autograder.grading import grade  # noqa: E402
from autograder.mnist_dnn import fixtures  # noqa: E402
from submissions.catalogue import write  # noqa: E402

SOLUTION = REPO / "solutions" / "01_mnist_dnn.py"
CLASS = ["reference", "softmax_dim0", "missing_zero_grad", "dropped_last_batch", "argmax_dim0",
         "linear_model", "dropout", "accuracy_tensor"]


def per_check(path: Path) -> None:
    start = time.perf_counter()
    report = grade(path)
    wall = time.perf_counter() - start
    print(f"grading {path.name}: {wall:.1f} s wall, score {report.score:g}/{report.max_score:g}")
    print(f"  starting the sandbox child (import torch, define the file): "
          f"{report.probe_seconds['startup']:.2f} s")
    for probe, seconds in report.probe_seconds.items():
        if probe == "startup":
            continue
        checks = [r for r in report.results if r.check.probe == probe]
        judged = sum(r.seconds for r in checks)
        print(f"  probe {probe:<9} {seconds:6.2f} s in the sandbox + {judged:.3f} s judging, "
              f"shared by {len(checks)} check(s):")
        for r in checks:
            print(f"    {r.check.id:<32} {seconds / len(checks) + r.seconds:6.3f} s "
                  f"(share of the probe + its judge)")


def throughput(workers: int, count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-class-"))
    for i in range(count):
        name = CLASS[i % len(CLASS)]
        shutil.copy(write(name, folder), folder / f"student{i:02d}_{name}.py")
        (folder / f"{name}.py").unlink()
    out = folder / "grades.csv"
    start = time.perf_counter()
    grade_folder(folder, out, workers=workers)
    seconds = time.perf_counter() - start
    print(f"batch of {count} with {workers} worker(s): {seconds:.1f} s, "
          f"{count / seconds * 60:.1f} submissions/minute")
    shutil.rmtree(folder, ignore_errors=True)


def calibrate(seeds: int) -> None:
    """min_test_accuracy over seeds: the solution and working variants vs linear models."""
    folder = Path(tempfile.mkdtemp(prefix="bench-calibrate-"))
    text = SOLUTION.read_text()
    linear_solution = folder / "solution_without_relu.py"
    linear_solution.write_text(re.sub(r"torch\.relu\((self\.hidden\d\(x\))\)", r"\1", text))
    subjects = {"solutions/01_mnist_dnn.py": SOLUTION, "solution without ReLU": linear_solution}
    for name in ("reference", "dropout", "linear_model"):
        subjects[f"catalogue {name}"] = write(name, folder)
    print(f"budget: {fixtures.HIDDEN_EPOCHS} epochs, batch_size {fixtures.HIDDEN_BATCH}, "
          f"threshold {fixtures.MIN_TEST_ACCURACY:.2%}, test images with Gaussian noise "
          f"sigma={fixtures.TEST_NOISE} (clamped to [0, 1])")
    for label, path in subjects.items():
        scores, train = [], []
        for seed in range(seeds):
            details = grade(path, only="min_test_accuracy", seed=seed).results[0].details
            scores.append(details.get("test_accuracy", float("nan")))
            train.append(details.get("train_accuracy", float("nan")))
        print(f"  {label:<28} test min {min(scores):.2%}  max {max(scores):.2%}  "
              f"[{', '.join(f'{s:.2%}' for s in scores)}]  "
              f"trained-on images min {min(train):.2%}")
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--count", type=int, default=8, help="submissions in the batch")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.seeds)
        return
    per_check(SOLUTION if SOLUTION.exists() else write("reference", tempfile.mkdtemp()))
    for workers in (1, 2):
        throughput(workers, args.count)


if __name__ == "__main__":
    main()
