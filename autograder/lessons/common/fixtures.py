"""What the grader builds for lesson 01: fixed data slices, its own small models, its own
accuracy. The same functions run in the sandbox child and in the grader's process, so both
sides rebuild identical inputs from the seeds below.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from autograder.lessons.common.datacache import mnist

# Budgets (the checks' numbers live here, once)
MODEL_BATCH = 64          # model probes: one batch of real training images
INIT_SAMPLES = 512        # initial loss is measured on this many training images
FIT_N, FIT_BATCH, FIT_EPOCHS = 250, 32, 3   # 250 = 7 full batches + a last one of 26
FIT_OFFSET, FIT_VAL = 1000, 100
HIDDEN_EPOCHS, HIDDEN_BATCH, HIDDEN_VAL = 2, 128, 1000
MIN_TEST_ACCURACY = 0.94  # calibrated: see benchmarks/bench_grader.py --calibrate
EXPORT_CHUNK = 500        # the clean child runs the exported model on batches of 500

# The hidden check scores the exported model on the test images, shuffled and with a little
# noise, and on training images picked at random, all drawn from a secret the grader chooses at
# evaluation time: the jail never sees it. A real MLP loses under 0.1 % to the noise (measured by
# benchmarks/bench_grader.py --calibrate).
TEST_NOISE = 0.02         # standard deviation of the Gaussian noise, then clamped to [0, 1]
AGREE_N = 100             # the exported graph must give the jail's eager outputs on these images
TRAIN_CHECK = 5000        # training images (a secret pick) are scored too: a model must not do
TEST_OVER_TRAIN = 0.015   # better on the test set than on them by more than this (or than
OVER_TRAIN_SE = 3         # this many standard errors of the difference, for a weak model)

# Sample i carries code (i + 1) / STAMP_SCALE in pixel (0, 0), pixel (0, 1) is 0 and pixel (0, 2)
# is 1: reading the three back undoes any per-sample or per-batch affine transform a * x + b
# (x / 255, standardisation) that the student's fit may apply to a batch.
STAMP_SCALE = 256         # fit: 250 samples, codes far apart (transforms lose some precision)
STAMP_PIXELS = 3


def train_slice(start: int, n: int):
    data = mnist()
    return data["x_train"][start:start + n].clone(), data["y_train"][start:start + n].clone()


def stamp(x: torch.Tensor, scale: int = STAMP_SCALE) -> torch.Tensor:
    """Write each sample's index into its top-left pixels (0 in every MNIST image)."""
    if len(x) >= scale:
        raise ValueError(f"at most {scale - 1} stamped samples")
    x = x.clone()
    x[:, 0, 0] = (torch.arange(len(x), dtype=torch.float32) + 1) / scale
    x[:, 0, 1], x[:, 0, 2] = 0.0, 1.0
    return x


def read_stamp(x: torch.Tensor, scale: int = STAMP_SCALE) -> torch.Tensor | None:
    """The indices stamped into a batch (any of the accepted shapes), or None if unreadable."""
    pixels = x.detach().reshape(x.shape[0], -1)[:, :STAMP_PIXELS].double()
    offset, unit = pixels[:, 1], pixels[:, 2] - pixels[:, 1]  # a * 0 + b and a * 1 + b
    if not torch.all(unit.abs() > 1e-12):
        return None
    code = (pixels[:, 0] - offset) / unit * scale
    index = code.round()
    if not torch.all((code - index).abs() < 0.05) or not torch.all(index >= 1):
        return None
    return index.long() - 1


def perturbed(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x with a little Gaussian noise, clamped to [0, 1]: same digits, not the same bytes."""
    return (x + TEST_NOISE * torch.randn(x.shape, generator=generator)).clamp_(0.0, 1.0)


def _picks(secret: int, trained: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set's order and the scored training images, from the grader's secret: picked
    among the first `trained` training images (None: all), those the model was trained on."""
    g = torch.Generator().manual_seed(secret)
    data = mnist()
    return (torch.randperm(len(data["y_test"]), generator=g),
            torch.randperm(trained or len(data["y_train"]), generator=g)[:TRAIN_CHECK])


def hidden_sets(secret: int, trained: int | None = None) -> dict:
    """The images the exported model is scored on: {name: (x, y)} (clean child, grader)."""
    data = mnist()
    order, picked = _picks(secret, trained)
    g = torch.Generator().manual_seed(secret + 1)
    return {"test": (perturbed(data["x_test"][order], g), data["y_test"][order]),
            "train": (perturbed(data["x_train"][picked], g), data["y_train"][picked])}


def hidden_labels(secret: int, trained: int | None = None) -> dict:
    data = mnist()
    order, picked = _picks(secret, trained)
    return {"test": data["y_test"][order], "train": data["y_train"][picked]}


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


PROBE_NET_SEED = 7


class FixedDropout(nn.Module):
    """Dropout with a fixed pattern: in training mode every fourth unit is zeroed and the others
    scaled by 4/3; in eval mode nothing changes. Deterministic, so the grader can replay it, and
    a gradient computed in eval mode differs from one computed in training mode."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(width) % 4 != 0).float() * 4 / 3)

    def forward(self, x):
        return x * self.mask if self.training else x


def probe_body() -> nn.Sequential:
    """The ProbeNet's layers with their initial weights: the same in every process and every
    thread. They are drawn from a generator of their own (the values nn.Linear's own
    initialisation draws after torch.manual_seed(PROBE_NET_SEED)), never from torch's global
    one, which another grading thread may seed or draw from at the same time."""
    body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), FixedDropout(32),
                         nn.Linear(32, 10))
    generator = torch.Generator().manual_seed(PROBE_NET_SEED)
    with torch.no_grad():
        for layer in (body[1], body[4]):
            bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform_(a=sqrt(5)), as Linear
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    return body


class ProbeNet(nn.Module):
    """A small known-good MLP the grader hands to the student's `fit` (so gap 1 cannot fail
    the fit checks). `on_forward(x)` is told of every forward pass that may be trained on, in
    either mode (the replay tells a pass in eval mode by its gradient)."""

    def __init__(self):
        super().__init__()
        self.body = probe_body()
        self.on_forward = None

    def forward(self, x):
        if self.on_forward is not None and torch.is_grad_enabled():
            self.on_forward(x)
        return self.body(x)


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])
