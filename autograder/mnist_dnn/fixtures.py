"""What the grader builds for lesson 01: fixed data slices, its own small models, its own
accuracy. The same functions run in the sandbox child and in the grader's process, so both
sides rebuild identical inputs from the seeds below.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from autograder.datacache import mnist

# Budgets (the checks' numbers live here, once)
MODEL_BATCH = 64          # model probes: one batch of real training images
INIT_SAMPLES = 512        # initial loss is measured on this many training images
FIT_N, FIT_BATCH, FIT_EPOCHS = 250, 32, 3   # 250 = 7 full batches + a last one of 26
FIT_OFFSET, FIT_VAL = 1000, 100
HIDDEN_EPOCHS, HIDDEN_BATCH, HIDDEN_VAL = 2, 128, 1000
MIN_TEST_ACCURACY = 0.94  # calibrated: see benchmarks/bench_grader.py --calibrate
EXPORT_CHUNK = 100        # the exported model is traced and evaluated with batches of 100

STAMP_SCALE = 2 ** 14     # sample i carries (i + 1) / 2**14 in pixel (0, 0), exact in float32


def train_slice(start: int, n: int):
    data = mnist()
    return data["x_train"][start:start + n].clone(), data["y_train"][start:start + n].clone()


def stamp(x: torch.Tensor) -> torch.Tensor:
    """Write each sample's index into its top-left pixel (0 in every MNIST image)."""
    x = x.clone()
    x[:, 0, 0] = (torch.arange(len(x), dtype=torch.float32) + 1) / STAMP_SCALE
    return x


def read_stamp(x: torch.Tensor) -> torch.Tensor | None:
    """The indices stamped into a batch (any of the accepted shapes), or None if unreadable."""
    code = x.detach().reshape(x.shape[0], -1)[:, 0].double() * STAMP_SCALE
    index = code.round()
    if not torch.all((code - index).abs() < 1e-3) or not torch.all(index >= 1):
        return None
    return index.long() - 1


def reference_accuracy(model, x, y, chunk: int = 1000) -> float:
    """The grader's accuracy: eval mode, no gradients, in chunks, mode restored."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            correct += (model(x[i:i + chunk]).argmax(dim=1) == y[i:i + chunk]).sum().item()
    model.train(was_training)
    return correct / len(x)


class ProbeNet(nn.Module):
    """A small known-good MLP the grader hands to the student's `fit` (so gap 1 cannot fail
    the fit checks). It notes each training batch and the gradient that batch alone gives."""

    def __init__(self, y: torch.Tensor):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
        self.y = y
        self.pending = None  # (indices, expected gradients) of the last training forward

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.pending = self._expected(x)
        return self.body(x)

    def _expected(self, x):
        index = read_stamp(x)
        if index is None or index.max() >= len(self.y):
            return None, None
        loss = F.cross_entropy(self.body(x.detach().float()), self.y[index])
        return index, torch.autograd.grad(loss, list(self.body.parameters()))

    def loss(self, x, y) -> float:
        with torch.no_grad():
            return F.cross_entropy(self.body(x), y).item()


class LookupModel(nn.Module):
    """Returns stored logits for each stamped sample, so the grader knows every prediction.
    It records the mode, gradient state and batch size of each call."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = logits
        self.scale = nn.Parameter(torch.ones(()))  # a real parameter, for `.to()` and friends
        self.calls = []

    def forward(self, x):
        self.calls.append({"training": self.training, "grad": torch.is_grad_enabled(),
                           "batch": int(x.shape[0])})
        index = read_stamp(x)
        if index is None or index.max() >= len(self.table):
            raise ValueError("the grader's test model did not recognise its input images: "
                             "pass x (or slices x[i:j] of it) to the model unchanged")
        return self.table[index] * self.scale


def lookup_case(n: int, seed: int):
    """(logits, x, y): n stamped blank images; about 70 % of the argmax predictions are right."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 10, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    right = torch.rand(n, generator=g) < 0.7
    y = torch.where(right, logits.argmax(dim=1), y)
    return logits, stamp(torch.zeros(n, 28, 28)), y


def lookup_expected(n: int, seed: int) -> float:
    logits, _, y = lookup_case(n, seed)
    return (logits.argmax(dim=1) == y).float().mean().item()
