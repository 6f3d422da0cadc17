"""What a student of lesson 01 waits for, measured as they meet it: the reference solution
notebook executed in a real Jupyter kernel (wall time, training time, each check cell), then
`python -m autograder grade` on that notebook (the hidden check included). Printed against
lesson 01's quality bar (60 s for the notebook, 15 s of training on a 2-core machine) and
against the README's figures. A benchmark, not a test: run it on a quiet core,

    taskset -c 1 python benchmarks/bench_notebook.py

(the kernel and the grader inherit the CPU affinity). Wall time depends on what else runs on
that core; CPU time is what a quiet core's wall time would be, so both are printed, with the
load average before and after.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.authoring import course

LESSON = "01_mnist_dnn"
BAR_NOTEBOOK_S, BAR_TRAINING_S = 60.0, 15.0


class CellClock:
    """Wall and kernel CPU seconds of each check cell (`check("...")`), through nbclient's cell
    hooks; the CPU is the kernel process's own (/proc), what a quiet core's wall would be."""

    def __init__(self):
        self.client, self.started, self.checks = None, {}, {}

    def start(self, cell, cell_index, **_):
        self.started[cell_index] = time.perf_counter(), self.kernel_cpu()

    def done(self, cell, cell_index, **_):
        source = cell.source
        if 'check("' in source and "### BEGIN HIDDEN" not in source:
            group = source.split('check("')[1].split('"')[0]
            wall, cpu = self.started[cell_index]
            after = self.kernel_cpu()
            self.checks[group] = (time.perf_counter() - wall,
                                  None if cpu is None or after is None else after - cpu)

    def kernel_cpu(self) -> float | None:
        """User + system CPU seconds of the kernel process so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.client.km.provisioner.pid}/stat").read_text()
            utime, stime = fields.rsplit(")", 1)[1].split()[11:13]
            return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
        except (AttributeError, OSError, ValueError):
            return None


def run_notebook(run_dir: str, executed: Path) -> tuple[float, dict]:
    """Execute the solution notebook (figures to `run_dir`), save it as `executed`; its wall
    seconds and each check cell's."""
    os.environ["MNIST_RUN_DIR"] = run_dir  # the kernel inherits it: figures go here
    nb = nbformat.read(course.solution_path(LESSON, ".ipynb"), as_version=4)
    clock = CellClock()
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(course.REPO)}},
                            on_cell_execute=clock.start, on_cell_executed=clock.done)
    clock.client = client
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, executed)
    return seconds, clock.checks


def grade(path: Path) -> tuple[float, str]:
    """`python -m autograder grade path`: wall seconds and the score line. (Its CPU is spent in
    jails whose processes its own rusage does not see: run it on a quiet core.)"""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path)],
                          cwd=course.REPO, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    score = next((line for line in done.stdout.splitlines() if line.startswith("score ")),
                 f"no score (exit {done.returncode}): {done.stderr[-300:]}")
    return wall, score


def main() -> None:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"{os.cpu_count()} cores, this run on core(s) {cores}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as run_dir:
        executed = Path(run_dir) / f"{LESSON}.ipynb"
        seconds, checks = run_notebook(run_dir, executed)
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
        grade_wall, score = grade(executed)
    train = metrics["train_seconds"]
    print(f"notebook  {seconds:6.1f} s wall   bar {BAR_NOTEBOOK_S:.0f} s   "
          f"ratio {seconds / BAR_NOTEBOOK_S:.2f}")
    print(f"training  {train:6.1f} s wall   bar {BAR_TRAINING_S:.0f} s   "
          f"ratio {train / BAR_TRAINING_S:.2f}   ({metrics['train_cpu_seconds']} s CPU)")
    for group, (wall, cpu) in checks.items():
        kernel = f"{cpu:5.2f} s kernel CPU" if cpu is not None else "kernel CPU unknown"
        print(f"check cell {group:9s} {wall:5.2f} s wall   {kernel}   (README: about a second)")
    print(f"grade     {grade_wall:6.1f} s wall   (python -m autograder grade, hidden check "
          f"included): {score}")
    print(f"test accuracy {metrics['test_accuracy']:.2%} (bar 98.00 %)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
