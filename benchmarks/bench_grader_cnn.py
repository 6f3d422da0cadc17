"""Lesson 02's grader: the grading time of its reference, and the hidden threshold's calibration.

    python benchmarks/bench_grader_cnn.py [--median N] [--calibrate [--seeds 0 1 2]
                                          [--margin 0.015] [--only NAME ...]]

--median N   grade tests/submissions/cnn_reference.py N times through the real jail, hidden
             check included, one at a time: seconds per grading and per probe (median, range).
--calibrate  the hidden check as the grader runs it — the probe that trains MyCNN with the
             lesson's fit and exports it, then the clean evaluation on the noisy, shuffled test
             set and the judge — but here, without a jail, for every correct variant of
             tests/submissions/cnn_catalogue.py (the test's own code; variants whose MyCNN is the
             reference's once, the others once per --seeds seed) and the buggy ones whose hidden
             check the tests run (a fully connected network among them: it must fail whatever
             its accuracy). The suggested minimum is the lowest test accuracy of the correct
             variants minus --margin; the Lesson record holds the one used.

Prints figures only, asserts nothing. The machine may be shared: the load average is printed.
"""
import argparse
import ast
import os
import statistics
import sys
import tempfile
import time
import types
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
    # a real module, registered: torch.export looks up forward's globals in sys.modules
    module = sys.modules[name] = types.ModuleType(name)
    exec(compile(ast.Module(body=kept, type_ignores=[]), name, "exec"), vars(module))
    return vars(module)


def hidden_check(name: str, seed: int = 0) -> dict:
    """The hidden check's verdict details for one variant, as the grader computes them."""
    ns = definitions(name)
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    outcome = probing.run_probe(PROBES["hidden"], ns, seed)
    with tempfile.TemporaryDirectory() as folder:
        evaluate(outcome, Path(folder), lambda args: probing.run_probe(
            PROBES["hidden_eval"], {}, 0, args))
    if not outcome["ok"]:
        return {"error": outcome["error"]["message"][:200]}
    verdict = judges.min_test_accuracy(outcome["data"], Context())
    return {**verdict.details, "seconds": time.perf_counter() - start,
            "cpu": time.process_time() - cpu, "passed": verdict.passed,
            "message": verdict.message}


def model_source(name: str) -> str:
    text = render(name)
    return text[text.index("class MyCNN"):text.index("check(\"model\")")]


def calibrate(margin: float, seeds: list[int], only: list[str]) -> None:
    threshold = mnist_cnn.LESSON.thresholds["min_test_accuracy"]
    print(f"hidden check: the lesson's fit, {judges.HIDDEN.epochs} epoch(s), batch "
          f"{judges.HIDDEN.batch_size}, {judges.HIDDEN.train_images or 60_000:,} training images; "
          f"current minimum {threshold:.2%}")
    scores, seen = {}, {model_source("reference"): "reference"}
    for variant in VARIANTS:
        if (only and variant.name not in only
                or variant.kind != "correct" and variant.hidden is None):
            continue
        same = seen.setdefault(model_source(variant.name), variant.name)
        if same != variant.name:
            print(f"  {variant.kind:>7} {variant.name:<36} the MyCNN of {same}", flush=True)
            continue
        for seed in seeds if variant.kind == "correct" else seeds[:1]:
            found = hidden_check(variant.name, seed)
            if "test_accuracy" not in found:
                print(f"  {variant.kind:>7} {variant.name:<36} seed {seed}: {found}", flush=True)
                continue
            if variant.kind == "correct":
                scores[(variant.name, seed)] = found["test_accuracy"]
            print(f"  {variant.kind:>7} {variant.name:<36} seed {seed}: test "
                  f"{found['test_accuracy']:.2%}, train {found['train_accuracy']:.2%}, "
                  f"{'passes' if found['passed'] else 'fails'}, {found['seconds']:.1f} s "
                  f"({found['cpu']:.1f} s CPU)  [{load()}]", flush=True)
            if not found["passed"]:
                print(f"  {'':>7} {'':<36} {found['message'][:160]}", flush=True)
    if scores:
        lowest = min(scores.values())
        print(f"correct variants: lowest {lowest:.2%} {min(scores, key=scores.get)}, highest "
              f"{max(scores.values()):.2%}: suggested minimum {lowest - margin:.2%} "
              f"(lowest - {margin:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--median", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--margin", type=float, default=0.015)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=[], help="only these variants")
    args = parser.parse_args()
    print(f"PyTorch {torch.__version__}, {os.cpu_count()} CPUs, {load()}")
    if args.median:
        median(args.median)
    if args.calibrate:
        calibrate(args.margin, args.seeds, args.only)


if __name__ == "__main__":
    main()
