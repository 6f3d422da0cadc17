"""Does a grade depend on the machine's load? A class graded quiet, then loaded (issue 17).

    python benchmarks/bench_load.py [--per-core 4] [--workers 2] [--children fork]

The class: lesson 01's reference, a correct network of another shape (wider_deeper), the
original notebook's bug (softmax_dim0: softmax(dim=0) before CrossEntropyLoss), a forward that
never ends (endless_forward: "too slow" must be the same verdict both times), and lesson 02's
reference. It is graded with `batch` (the instructor's command) twice: on the machine as it is,
then with `--per-core` busy processes on every core and, in lesson 01's class, a hostile
classmate (tests/busy.py: 200 busy processes of its own and tqdm's lock held for good).
Prints both tables, check by check, the checks whose points differ (there must be none) and the
time ratio. Figures only; it asserts nothing. The load average is printed: a shared machine
shifts the times, never the points.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from busy import HOSTILE, busy, load_average  # noqa: E402
from submissions import catalogue, cnn_catalogue  # noqa: E402

from autograder.frontends.batch import grade_folder  # noqa: E402

CLASS = {"01_mnist_dnn": ["reference", "wider_deeper", "softmax_dim0", "endless_forward"],
         "02_mnist_cnn": ["reference"]}


def make_class(root: Path, hostile: bool) -> dict[str, Path]:
    """lesson -> a folder of its students' files."""
    folders = {}
    for lesson, names in CLASS.items():
        folder = root / lesson
        folder.mkdir(parents=True)
        source = catalogue if lesson == "01_mnist_dnn" else cnn_catalogue
        for name in names:
            (folder / f"{name}.py").write_text(source.render(name))
        if hostile and lesson == "01_mnist_dnn":
            (folder / "hostile.py").write_text(catalogue.render("reference") + HOSTILE)
        folders[lesson] = folder
    return folders


def grade_class(root: Path, hostile: bool, args) -> tuple[dict, float]:
    """(lesson, student) -> {check: points, "status": ...}, and the wall seconds it took."""
    rows, start = {}, time.perf_counter()
    for lesson, folder in make_class(root, hostile).items():
        out = root / f"{lesson}.csv"
        grade_folder(folder, out, workers=args.workers, lesson=lesson, children=args.children)
        with open(out, newline="") as f:
            for row in csv.DictReader(f):
                rows[lesson, row.pop("student")] = row
    return rows, time.perf_counter() - start


def table(title: str, rows: dict) -> None:
    print(f"\n{title}")
    for (lesson, student), row in sorted(rows.items()):
        failed = [check for check, points in row.items()
                  if check not in ("score", "max_score", "status", "error") and points == "0"]
        print(f"  {lesson} {student:<16} {row.get('status', ''):<11} "
              f"{row.get('score', ''):>3}/{row.get('max_score', '')}  "
              f"failed: {', '.join(failed) or '-'}{'  ' + row['error'][:70] if row.get('error') else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-core", type=int, default=4, help="busy processes per core")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--children", choices=["fork", "ahead", "each"], default=None)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        print(f"quiet: load average {load_average()} on {os.cpu_count()} cores")
        quiet, quiet_s = grade_class(Path(scratch) / "quiet", False, args)
        with busy(args.per_core):
            time.sleep(2)
            loaded, loaded_s = grade_class(Path(scratch) / "loaded", True, args)
            during = load_average()
    table(f"quiet ({quiet_s:.0f} s)", quiet)
    table(f"loaded: {args.per_core} busy processes per core + a hostile classmate "
          f"({loaded_s:.0f} s; load average at the end {during})", loaded)
    differ = [(key, check, quiet[key].get(check), loaded[key].get(check))
              for key in quiet for check in quiet[key]
              if check != "error" and quiet[key].get(check) != loaded[key].get(check)]
    print(f"\nchecks whose points differ between quiet and loaded: {len(differ)}")
    for (lesson, student), check, before, after in differ:
        print(f"  {lesson} {student} {check}: {before} -> {after}")
    print(f"time loaded / quiet: x{loaded_s / quiet_s:.2f} ({loaded_s:.0f} s / {quiet_s:.0f} s)")


if __name__ == "__main__":
    main()
