"""Lesson 02's reference CNN: its training time and test accuracy, and the hidden check's budget.

    taskset -c 1 python benchmarks/bench_cnn.py [--seeds 0 1 2] [--hidden-seeds 0 1 2]
                                               [--margin 0.01] [--notebook]

reference  MyCNN and the parameters cell of solutions/02_mnist_cnn.py (read without running
           its top-level cells), trained as the solution trains it: images x / 255 then
           standardised, shared.training.fit at EPOCHS, BATCH_SIZE, LEARNING_RATE.
hidden     the grader's style (lesson 01's hidden check): images x / 255, not standardised;
           fit for --hidden-epochs on --hidden-images training images, its per-epoch curves on
           the first 1,000 of them; the accuracy on the 10,000 test images with Gaussian noise
           (sigma --noise, clamped to [0, 1]). The suggested minimum is the lowest accuracy
           over the seeds minus --margin.
notebook   solutions/02_mnist_cnn.ipynb executed in a real Jupyter kernel, as Restart & Run All
           runs it (its default parameters): the whole notebook's wall time, and the CNN's
           training time it reports itself (wall and CPU), against the README's figures.

Everything runs on one CPU thread (torch.set_num_threads(1)), as the lesson does on a CPU.
Wall time depends on what else runs on the machine: the load average is printed with the
figures, and CPU time (one thread) is what a quiet machine's wall time would be. Prints
figures only, asserts nothing.
"""
import argparse
import ast
import contextlib
import inspect
import io
import os
import time
from pathlib import Path

import torch

from shared.data import load_mnist
from shared.training import accuracy, fit

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "02_mnist_cnn.py"


def solution_namespace() -> dict:
    """The solution's imports (but the grader's), functions, classes and constant parameters."""
    tree = ast.parse(SOLUTION.read_text())
    kept = [node for node in tree.body
            if isinstance(node, (ast.Import, ast.FunctionDef, ast.ClassDef))
            or (isinstance(node, ast.ImportFrom) and not node.module.startswith("autograder"))
            or (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant))]
    ns = {"__name__": "solution"}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(SOLUTION), "exec"), ns)
    return ns


def train(ns, seed, x_train, y_train, x_val, y_val, epochs, batch_size, learning_rate):
    """(the trained model, wall seconds, CPU seconds); fit's progress bar is not shown."""
    torch.manual_seed(seed)
    model = ns["MyCNN"]()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        fit(model, x_train, y_train, x_val, y_val, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate)
    return model, time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def reference(ns, seeds, x_train, y_train, x_test, y_test) -> None:
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    epochs, batch_size, lr = ns["EPOCHS"], ns["BATCH_SIZE"], ns["LEARNING_RATE"]
    gamma = inspect.signature(fit).parameters["gamma"].default
    print(f"reference: {epochs} epochs, batch {batch_size}, Adam lr {lr:g} x{gamma} per epoch")
    for seed in seeds:
        model, wall, cpu = train(ns, seed, x_train, y_train, x_test, y_test, epochs, batch_size,
                                 lr)
        print(f"  seed {seed}: training {wall:.1f} s ({cpu:.1f} s CPU), test accuracy "
              f"{accuracy(model, x_test, y_test):.2%}  [{load()}]", flush=True)


def hidden(ns, args, x_train, y_train, x_test, y_test) -> None:
    x, y = x_train[:args.hidden_images], y_train[:args.hidden_images]
    noisy = (x_test + args.noise * torch.randn(x_test.shape, generator=torch.Generator()
                                                .manual_seed(0))).clamp(0.0, 1.0)
    print(f"hidden-check style: {args.hidden_epochs} epoch(s) on {len(x):,} images x / 255, "
          f"batch {args.hidden_batch}, lr {ns['LEARNING_RATE']:g}; test images + noise "
          f"sigma {args.noise}")
    scores = []
    for seed in args.hidden_seeds:
        model, wall, cpu = train(ns, seed, x, y, x[:1000], y[:1000], args.hidden_epochs,
                                 args.hidden_batch, ns["LEARNING_RATE"])
        scores.append(accuracy(model, noisy, y_test))
        print(f"  seed {seed}: training {wall:.1f} s ({cpu:.1f} s CPU), test accuracy "
              f"{scores[-1]:.2%}  [{load()}]", flush=True)
    print(f"  lowest {min(scores):.2%}, highest {max(scores):.2%}: suggested minimum "
          f"{min(scores) - args.margin:.2%} (lowest - {args.margin:.2%})")


def notebook() -> None:
    """Restart & Run All of the solution notebook, in a kernel that inherits this process's CPU
    affinity (taskset), figures and metrics in a temporary folder."""
    import json
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    path = SOLUTION.with_suffix(".ipynb")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MNIST_RUN_DIR"] = folder
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                                resources={"metadata": {"path": str(SOLUTION.parents[1])}})
        before = load()
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
    print(f"notebook: Restart & Run All {seconds:.1f} s; the CNN's {metrics['epochs']} epochs "
          f"{metrics['train_seconds']:.1f} s ({metrics['train_cpu_seconds']:.1f} s CPU), test "
          f"accuracy {metrics['test_accuracy']:.2%}, DNN {metrics['dnn_test_accuracy']:.2%}  "
          f"[before: {before}; after: {load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--hidden-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--hidden-epochs", type=int, default=1)
    parser.add_argument("--hidden-batch", type=int, default=64)
    parser.add_argument("--hidden-images", type=int, default=60_000)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--notebook", action="store_true",
                        help="also run the solution notebook in a kernel (Restart & Run All)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ns = solution_namespace()
    (x_train, y_train), (x_test, y_test) = load_mnist(normalize=False)
    x_train, x_test = x_train.float() / 255, x_test.float() / 255
    print(f"PyTorch {torch.__version__}, 1 thread, {os.cpu_count()} CPUs, {load()}")
    if args.seeds:
        reference(ns, args.seeds, x_train, y_train, x_test, y_test)
    if args.hidden_seeds:
        hidden(ns, args, x_train, y_train, x_test, y_test)
    if args.notebook:
        notebook()


if __name__ == "__main__":
    main()
