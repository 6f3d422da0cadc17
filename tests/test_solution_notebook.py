"""CI's end-to-end run: the reference solution notebook, executed in a real Jupyter kernel at its
default parameters, raises no error and reaches the lesson's accuracy bar."""
import json
import re
import time

import nbformat
from nbclient import NotebookClient

from autograder.authoring import course

LESSON = "01_mnist_dnn"
MIN_TEST_ACCURACY = 0.98
# Speed (<= 60 s for the notebook, <= 15 s of training) is measured by
# benchmarks/bench_notebook.py, not asserted here: the test prints its times for the log.


def test_solution_notebook_runs_and_reaches_98_percent(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_RUN_DIR", str(tmp_path))
    nb = nbformat.read(course.solution_path(LESSON, ".ipynb"), as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(course.REPO)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    seconds = time.perf_counter() - start
    nbformat.write(nb, tmp_path / f"{LESSON}.executed.ipynb")

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    last = nb.cells[-1].outputs[-1].text.strip().splitlines()[-1]
    assert re.fullmatch(r"Test accuracy: \d\.\d{4}", last), last
    assert float(last.split()[-1]) == round(metrics["test_accuracy"], 4)
    print(f"notebook {seconds:.1f} s, training {metrics['train_seconds']} s "
          f"({metrics['train_cpu_seconds']} s CPU), test accuracy {metrics['test_accuracy']:.4f}")
    assert metrics["test_accuracy"] >= MIN_TEST_ACCURACY
    for name in ("history", "predictions", "errors", "confusion_matrix", "doubts"):
        assert (tmp_path / f"{name}.png").is_file()
