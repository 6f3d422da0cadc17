"""Time the student's JupyterLab session in a real browser (Debian's chromium, playwright):
kernel ready, each check cell, Kernel ▸ Restart Kernel and Run All Cells, against issue 11's
goals. A benchmark, not a test: run it on a quiet machine.

    python benchmarks/bench_student.py [--epochs N] [--repeat K]

The notebook is `make student`'s copy with the three gaps filled from solutions/ and EPOCHS
from --epochs (default: the lesson's own). Each check cell is run K times (median shown).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the browser driver the browser test uses

import student_lab as lab  # noqa: E402
from student_lab import LESSON, LabServer, Notebook, launch, missing_browser  # noqa: E402

GOALS = {"kernel ready": 6.0, "check cell": 1.5, "Restart & Run All": 40.0}
GROUPS = ("model", "fit", "accuracy")


def filled_copy(work: Path, epochs) -> None:
    """`make student`'s copy, gaps filled with the reference answers, EPOCHS set if asked."""
    work.mkdir(parents=True)
    parameters = None if epochs is None else {"EPOCHS": epochs}
    nbformat.write(lab.filled_copy(LESSON, parameters), work / f"{LESSON}.ipynb")


def session(work: Path, run_dir: Path, repeat: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with LabServer(work, run_dir, work.parent / "jupyterlab.log") as server, \
            sync_playwright() as playwright:
        server_s = time.perf_counter() - start
        browser = launch(playwright)
        try:
            notebook = Notebook(browser.new_page(viewport={"width": 1400, "height": 1000}),
                                work.parent / "screenshots")
            notebook.open(server.url(f"/lab/tree/{LESSON}.ipynb"))
            notebook.restart_and_run_all("Test accuracy: ")  # the first full run warms caches
            first = notebook.timings.pop("Restart & Run All")
            for group in GROUPS:
                cell = notebook.cell(f'check("{group}")')
                runs = []
                for _ in range(repeat):
                    notebook.run(cell, "once")
                    runs.append(notebook.timings.pop("once"))
                notebook.timings[f"check cell {group}"] = statistics.median(runs)
            notebook.restart_and_run_all("Test accuracy: ")
        finally:
            browser.close()
    return {"JupyterLab server up": server_s, **notebook.timings, "first Run All": first}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the lesson's EPOCHS")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each check cell")
    args = parser.parse_args(argv)
    problem = missing_browser()
    if problem:
        sys.exit(problem)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"EPOCHS {args.epochs if args.epochs is not None else 'as in the lesson'}")
    with tempfile.TemporaryDirectory() as tmp:
        filled_copy(Path(tmp) / "work", args.epochs)
        timings = session(Path(tmp) / "work", Path(tmp) / "runs", args.repeat)
    for step, seconds in timings.items():
        goal = GOALS.get("check cell" if step.startswith("check cell") else step)
        against = f"   goal {goal:4.1f} s   ratio {seconds / goal:.2f}" if goal else ""
        print(f"{step:24s} {seconds:6.2f} s{against}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
