"""Lesson 01's reference training against the original it replaces, in one process.

    python benchmarks/bench_training.py [--original-epochs 128] [--threads 1]

reference  the solution's own MyModel, fit and accuracy (read from solutions/01_mnist_dnn.py
           without running its top-level cells) at its default parameters.
original   Fidle's PMNIST1, re-implemented here as it trains: float64 images (x / 255) cast to
           float32 at every batch; `softmax(dim=0)` at the end of forward, fed to
           CrossEntropyLoss; Adam, lr 1e-3; batches of 512 from a NumPy shuffle, the last
           partial batch dropped; after each epoch (and once before) a history measured on
           10,000 random training images and the 10,000 test images, each in one forward pass,
           in training mode with autograd on; finally the test accuracy from one forward pass
           over the whole test set, the same way.

Both run on the same tensors with the same number of threads. Wall time depends on what else
runs on the machine; CPU time (one thread) is what a quiet machine's wall time would be.
With --original-epochs below 128 the original's time is extrapolated to 128 epochs (the
accuracy is the one reached after the epochs run), and the output says so.
"""
import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autograder.engine import submission
from shared.data import load_mnist

SOLUTION = os.path.join(os.path.dirname(__file__), "..", "solutions", "01_mnist_dnn.py")
ORIGINAL_EPOCHS, ORIGINAL_BATCH = 128, 512


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


# --------------------------------------------------------------------------- the reference

def solution_namespace() -> dict:
    """MyModel, fit, accuracy, evaluate and the parameters, as the solution defines them."""
    ns = {"__name__": "solution"}
    for statement in submission.load(SOLUTION).statements:
        exec(compile(statement.source, SOLUTION, "exec"), ns)
    return ns


def reference(x_train, y_train, x_test, y_test) -> dict:
    ns = solution_namespace()
    x_train, x_test = x_train.float() / 255, x_test.float() / 255  # as in the lesson, step 3
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(ns["SEED"])
    model = ns["MyModel"]()
    with Clock() as clock:
        history = ns["fit"](model, x_train, y_train, x_test, y_test)
    return {"accuracy": ns["accuracy"](model, x_test, y_test), "clock": clock,
            "epochs": ns["EPOCHS"], "last_loss": history["loss"][-1],
            "what": f"{ns['EPOCHS']} epochs, batch {ns['BATCH_SIZE']}, Adam lr "
                    f"{ns['LEARNING_RATE']:g} x0.8 per epoch"}


# --------------------------------------------------------------------------- the original

class OriginalModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden1 = nn.Linear(784, 100)
        self.hidden2 = nn.Linear(100, 100)
        self.hidden3 = nn.Linear(100, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = F.relu(self.hidden1(x))
        x = F.relu(self.hidden2(x))
        return F.softmax(self.hidden3(x), dim=0)  # the defect: over the batch


def original_history(model, loss_fn, x_train, y_train, x_test, y_test, history):
    chosen = np.random.permutation(len(x_train))[:len(x_test)]
    for prefix, x, y in (("", x_train[chosen], y_train[chosen]), ("val_", x_test, y_test)):
        out = model(x.float())  # one batch, training mode, autograd on
        history[prefix + "loss"].append(loss_fn(out, y).item())
        history[prefix + "accuracy"].append(float((out.argmax(dim=1) == y).float().mean()))


def original_fit(model, x_train, y_train, x_test, y_test, epochs, batch_size):
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    original_history(model, loss_fn, x_train, y_train, x_test, y_test, history)
    n = len(x_train)
    for _ in range(epochs):
        order = np.arange(n)
        np.random.shuffle(order)
        start = 0
        while start + batch_size < n:  # the last partial batch never runs
            batch = order[start:start + batch_size]
            x, y = x_train[batch].float(), y_train[batch]  # float64 -> float32, every batch
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            start += batch_size
        original_history(model, loss_fn, x_train, y_train, x_test, y_test, history)
    return history


def original(x_train, y_train, x_test, y_test, epochs) -> dict:
    x_train, x_test = x_train.double() / 255, x_test.double() / 255
    torch.manual_seed(0)
    np.random.seed(0)
    model = OriginalModel()
    with Clock() as clock:
        history = original_fit(model, x_train, y_train, x_test, y_test, epochs, ORIGINAL_BATCH)
    predictions = model(x_test.float()).argmax(dim=1)  # as the original evaluates
    return {"accuracy": float((predictions == y_test).float().mean()), "clock": clock,
            "epochs": epochs, "last_loss": history["loss"][-1],
            "what": f"{epochs} epochs, batch {ORIGINAL_BATCH}, Adam lr 0.001"}


# --------------------------------------------------------------------------- report

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original-epochs", type=int, default=ORIGINAL_EPOCHS,
                        help=f"epochs of the original to run (default {ORIGINAL_EPOCHS}; fewer: "
                             f"its time is extrapolated to {ORIGINAL_EPOCHS})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    (x_train, y_train), (x_test, y_test) = load_mnist(normalize=False)
    print(f"torch {torch.__version__}, CPU, {args.threads} thread(s), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    ref = reference(x_train, y_train, x_test, y_test)
    report("reference", ref)
    orig = original(x_train, y_train, x_test, y_test, args.original_epochs)
    scale = ORIGINAL_EPOCHS / orig["epochs"]
    note = "" if scale == 1 else (f"   [ran {orig['epochs']} epochs: times extrapolated x{scale:g} "
                                  f"to {ORIGINAL_EPOCHS}, accuracy after {orig['epochs']}]")
    report("original", orig, scale, note)

    wall = orig["clock"].wall * scale / ref["clock"].wall
    cpu = orig["clock"].cpu * scale / ref["clock"].cpu
    errors = (1 - orig["accuracy"]) / (1 - ref["accuracy"])
    print(f"ratio: the reference trains {wall:.1f}x faster (wall), {cpu:.1f}x (CPU), and makes "
          f"{errors:.1f}x fewer test errors")
    print(f"the original's training loss stays near ln 10 = {math.log(10):.3f}: "
          f"{orig['last_loss']:.3f} after {orig['epochs']} epochs")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def report(name, result, scale=1.0, note=""):
    wall, cpu = result["clock"].wall * scale, result["clock"].cpu * scale
    print(f"{name:9s}  test accuracy {result['accuracy']:.2%}   training {wall:6.1f} s wall, "
          f"{cpu:6.1f} s CPU   ({result['what']}; final training loss "
          f"{result['last_loss']:.3f}){note}", flush=True)


if __name__ == "__main__":
    main()
