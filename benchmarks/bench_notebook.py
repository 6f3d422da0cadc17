"""Execute the reference solution notebook in a real Jupyter kernel, as a student would, and
print its wall time and training time against lesson 01's quality bar (60 s and 15 s on a
2-core machine). A benchmark, not a test: run it on a quiet machine.

    python benchmarks/bench_notebook.py
"""
import json
import os
import tempfile
import time

import nbformat
from nbclient import NotebookClient

from autograder.authoring import course

LESSON = "01_mnist_dnn"
BAR_NOTEBOOK_S, BAR_TRAINING_S = 60.0, 15.0


def main() -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as run_dir:
        os.environ["MNIST_RUN_DIR"] = run_dir  # the kernel inherits it: figures go here
        nb = nbformat.read(course.solution_path(LESSON, ".ipynb"), as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(course.REPO)}})
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
        metrics = json.loads((open(os.path.join(run_dir, "metrics.json"))).read())
    train = metrics["train_seconds"]
    print(f"notebook  {seconds:6.1f} s wall   bar {BAR_NOTEBOOK_S:.0f} s   "
          f"ratio {seconds / BAR_NOTEBOOK_S:.2f}")
    print(f"training  {train:6.1f} s wall   bar {BAR_TRAINING_S:.0f} s   "
          f"ratio {train / BAR_TRAINING_S:.2f}   ({metrics['train_cpu_seconds']} s CPU)")
    print(f"test accuracy {metrics['test_accuracy']:.2%} (bar 98.00 %)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
