"""How fast is the grader, and where does min_test_accuracy's threshold come from?

    python benchmarks/bench_grader.py                 # per-check times + batch throughput
    python benchmarks/bench_grader.py --nbgrader      # serial nbgrader vs course grade --workers
    python benchmarks/bench_grader.py --calibrate     # hidden check over 5 seeds
    python benchmarks/bench_grader.py --median 5      # grading time per submission, median
    python benchmarks/bench_grader.py --no-dask --count 12   # local pool only

Batch throughput is measured in one run for the local pool as before (each submission starts
its children in bubblewrap when it comes), the local pool with children started ahead of need
(engine/warm.py), the local pool with children forked by a fork server (engine/zygote.py, the
default where it can run) and a local Dask cluster (distributed.LocalCluster, one
single-threaded worker process each; each worker starts a fork server of its own where it can),
with 1 and 2 workers; then the ratios against "as before" and 2 workers / 1, the load average
(the machine may be shared) and where a submission's time goes.

Prints figures; it is a benchmark, never run by the test suite.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from autograder.frontends.batch import grade_folder  # noqa: E402
from autograder.engine.grading import grade  # noqa: E402
from autograder.lessons.common import fixtures  # noqa: E402
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


def per_submission(path: Path, times: int) -> None:
    """Wall-clock seconds to grade one submission, the median of N gradings (issue 9)."""
    walls = []
    for _ in range(times):
        start = time.perf_counter()
        grade(path)
        walls.append(time.perf_counter() - start)
    print(f"grading time per submission ({path.name}, {times} runs): median "
          f"{statistics.median(walls):.1f} s, min {min(walls):.1f} s, max {max(walls):.1f} s")


def make_class(count: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-class-"))
    for i in range(count):
        name = CLASS[i % len(CLASS)]
        shutil.copy(write(name, folder), folder / f"student{i:02d}_{name}.py")
        (folder / f"{name}.py").unlink()
    return folder


ENGINES = ("local pool, as before", "local pool, started ahead", "local pool, fork server",
           "Dask LocalCluster")
CHILDREN = {ENGINES[0]: "each", ENGINES[1]: "ahead", ENGINES[2]: "fork"}


def throughput(count: int, engines=ENGINES) -> None:
    """Submissions per minute for each engine, 1 and 2 workers, in this one run."""
    folder, out = make_class(count), Path(tempfile.mkdtemp(prefix="bench-out-"))
    rates = {}
    for engine in engines:
        for workers in (1, 2):
            with _engine(engine, workers) as options:
                load = os.getloadavg()[0]
                start = time.perf_counter()
                results = grade_folder(folder, out / "grades.csv", force=True, **options)
                seconds = time.perf_counter() - start
            rates[engine, workers] = count / seconds * 60
            print(f"batch of {count}, {engine}, {workers} worker(s): {seconds:.1f} s, "
                  f"{rates[engine, workers]:.1f} submissions/minute (load average "
                  f"{load:.2f} before, {os.getloadavg()[0]:.2f} after)", flush=True)
            print(f"  per submission, mean: {_where_time_goes(results)}", flush=True)
    for workers in (1, 2):
        for engine in ENGINES[1:]:
            if (ENGINES[0], workers) in rates and (engine, workers) in rates:
                print(f"{workers} worker(s): {engine} / as before = "
                      f"{rates[engine, workers] / rates[ENGINES[0], workers]:.2f}")
    for engine in ENGINES:
        if (engine, 1) in rates and (engine, 2) in rates:
            print(f"{engine}: 2 workers / 1 worker = "
                  f"{rates[engine, 2] / rates[engine, 1]:.2f}")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


def _where_time_goes(results: list[dict]) -> str:
    """Mean seconds per probe (the clean child's evaluation included in its probe) and the
    start-up the submission waited for."""
    reports = [r["report"] for r in results if r["report"]]
    probes = dict.fromkeys(p for r in reports for p in r["probe_seconds"])
    means = {p: statistics.mean(r["probe_seconds"].get(p, 0.0) for r in reports) for p in probes}
    wall = statistics.mean(r["seconds"] for r in reports) if reports else 0.0
    return f"{wall:.1f} s graded, of which " + ", ".join(f"{p} {s:.2f} s"
                                                          for p, s in means.items())


@contextlib.contextmanager
def _engine(engine: str, workers: int):
    """grade_folder's options for `engine`; a Dask cluster is started (and its workers have
    imported the grader) before the clock starts."""
    if engine.startswith("local pool"):
        yield {"workers": workers, "children": CHILDREN[engine]}
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(importlib.import_module, "autograder.engine.grading")
        yield {"scheduler": cluster.scheduler_address}


def nbgrader_class(workers: list[int]) -> None:
    """The 6-student class of tests/test_nbgrader.py: serial `nbgrader autograde` vs
    `python -m autograder.frontends.nbgrader.course grade --workers N` (autograde only, then + feedback/export)."""
    import nbformat
    from test_nbgrader import LESSON, make_class as nbgrader_students

    from autograder.frontends.nbgrader import autograde as nbautograde
    from autograder.frontends.nbgrader import course as nbcourse
    from autograder.authoring.course import annotated_notebook

    root = Path(tempfile.mkdtemp(prefix="bench-nbgrader-"))
    annotated = annotated_notebook(LESSON)
    nbcourse.build(root / "course", {LESSON: annotated})
    nbcourse.nbgrader("generate_assignment", LESSON, course_dir=root / "course")
    release = nbformat.read(root / "course" / "release" / LESSON / f"{LESSON}.ipynb", 4)
    students = nbgrader_students(release, annotated)
    for student, nb in students.items():
        (root / "course" / "submitted" / student / LESSON).mkdir(parents=True)
        nbformat.write(nb, root / "course" / "submitted" / student / LESSON / f"{LESSON}.ipynb")
    for n in [0, *workers]:
        course = root / f"course-{n}"
        shutil.copytree(root / "course", course)
        start = time.perf_counter()
        if n == 0:
            nbcourse.nbgrader("autograde", LESSON, course_dir=course)
            label = "nbgrader autograde (serial)"
        else:
            nbautograde.autograde(course, LESSON, workers=n)
            label = f"course grade --workers {n}, autograde step"
        print(f"{len(students)} students, {label}: {time.perf_counter() - start:.1f} s",
              flush=True)
    shutil.rmtree(root, ignore_errors=True)


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
    parser.add_argument("--no-dask", action="store_true",
                        help="throughput of the local pool only (as before, started ahead, "
                             "fork server)")
    parser.add_argument("--nbgrader", action="store_true",
                        help="only: serial nbgrader autograde vs `course grade` --workers 1, 2")
    parser.add_argument("--median", type=int, default=0, metavar="N",
                        help="only: grade the solution N times, print the median time")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.seeds)
        return
    if args.nbgrader:
        nbgrader_class([1, 2])
        return
    solution = SOLUTION if SOLUTION.exists() else write("reference", tempfile.mkdtemp())
    if args.median:
        per_submission(solution, args.median)
        return
    per_check(solution)
    throughput(args.count, ENGINES[:3] if args.no_dask else ENGINES)


if __name__ == "__main__":
    main()
