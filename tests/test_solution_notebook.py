"""CI's end-to-end run: each lesson's reference solution notebook, executed in a real Jupyter
kernel at its default parameters, raises no error, reaches the lesson's accuracy bar and
saves its figures."""
import json
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.authoring import course

# lesson -> (the accuracy its reference must reach, the figures it saves). Speed is measured by
# benchmarks/bench_notebook.py and bench_cnn.py, not asserted here: the test prints its times.
BARS = {"01_mnist_dnn": (0.98, ("history", "predictions", "errors", "confusion_matrix",
                                "doubts")),
        "02_mnist_cnn": (0.985, ("history", "filters", "feature_maps", "errors",
                                 "confusion_matrix", "dnn_errors_cnn_right"))}


def test_every_lesson_has_its_bar():
    from autograder import lessons

    assert sorted(BARS) == sorted(lessons.ids())


@pytest.mark.parametrize("LESSON", sorted(BARS))
def test_solution_notebook_runs_and_reaches_its_accuracy(tmp_path, monkeypatch, LESSON):
    min_test_accuracy, figures = BARS[LESSON]
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
    assert metrics["test_accuracy"] >= min_test_accuracy
    for name in figures:
        assert (tmp_path / f"{name}.png").is_file()
