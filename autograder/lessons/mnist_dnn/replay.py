"""The fit checks' evidence, re-derived in the grader's process from what the jail claims.

The jail reports, for each backward pass of the student's fit through the grader's ProbeNet,
the batch it was given, the parameters it met and the gradient it left, and the parameters
after each optimizer step. Here the grader recomputes: that the batch is made of its own stamped
images, that the gradient is the cross-entropy gradient of that batch at those parameters (or of
that batch plus the previous ones, or with the labels in the wrong order, or in eval mode: the
ProbeNet's mask acts only in training mode), that the parameters form one chain from the
ProbeNet's known initial weights through optimizer steps to the final ones, and the loss before
and after. Only what survives the replay earns points.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from autograder.lessons.common import fixtures as fx
from autograder.lessons.mnist_dnn.probes import FitLog

GRAD_TOLERANCE = 1e-3     # relative to the size of the gradient compared
PARAM_TOLERANCE = 1e-6    # relative: parameters passed between events unchanged


class Unreadable(ValueError):
    """A claim that is not shaped like the evidence it pretends to be."""


@dataclass
class Evidence:
    batches: list = field(default_factory=list)   # sample indices of each explained pass
    kinds: list = field(default_factory=list)     # per backward pass: own, accumulated,
    steps: int = 0                                # misaligned, eval_mode, unknown, unexplained
    idle_steps: int = 0                           # optimizer steps that changed no parameter
    idle: Counter = field(default_factory=Counter)  # why they did, as IDLE_CAUSES (a claim)
    broken: str | None = None                     # why the chain of parameters does not hold
    loss_before: float = 0.0
    loss_after: float = 0.0

    @property
    def idle_cause(self) -> str | None:
        """The most frequent cause of the idle steps, for the message (points never rest on
        it: the steps are counted from the parameters)."""
        return self.idle.most_common(1)[0][0] if self.idle else None

    @property
    def explained(self) -> bool:
        return bool(self.kinds) and all(k in ("own", "misaligned", "accumulated", "eval_mode")
                                        for k in self.kinds)


class Replay:
    def __init__(self):
        x, self.y = fx.train_slice(fx.FIT_OFFSET, fx.FIT_N)
        self.x = fx.stamp(x).reshape(fx.FIT_N, -1)
        self.body = fx.probe_body()
        self.shapes = [p.shape for p in self.body.parameters()]
        self.size = sum(p.numel() for p in self.body.parameters())
        self.start = fx.flat(self.body.parameters())

    def run(self, data: dict) -> Evidence:
        events = data["events"]
        if not isinstance(events, list) or len(events) > FitLog.MAX_EVENTS:
            raise Unreadable("events")
        evidence, state, grad, seen = Evidence(), self.start, None, 0
        for event in events:
            kind = event.get("kind") if isinstance(event, dict) else None
            params = self.vector(event.get("params") if kind else None)
            if kind == "backward":
                if not _same(params, state):
                    evidence.broken = "the parameters changed outside optimizer.step()"
                grad = self.backward(event, params, grad, seen % fx.FIT_N, evidence)
                seen += len(evidence.batches[-1]) if evidence.kinds[-1] != "unknown" else 0
            elif kind == "step":
                self.step(params, state, evidence, event)
            else:
                raise Unreadable("event kind")
            state = params
        final = self.vector(data["final"])
        if not _same(final, state):
            evidence.broken = "the parameters changed outside optimizer.step()"
        if data.get("truncated"):
            evidence.broken = "fit ran more backward passes and steps than the grader records"
        evidence.loss_before, evidence.loss_after = self.loss(self.start), self.loss(final)
        return evidence

    # ------------------------------------------------------------------ one event

    def backward(self, event, params, previous, position, evidence) -> torch.Tensor:
        x, grad = event.get("x"), self.vector(event.get("grad"))
        index = self.images(x)
        if index is None:
            evidence.kinds.append("unknown")
            evidence.batches.append(torch.zeros(0, dtype=torch.long))
            return grad
        x = x.reshape(len(x), -1)
        own = self.gradient(params, x, self.y[index])
        in_order = torch.arange(position, position + len(index)) % fx.FIT_N
        if _multiple(grad, own):
            kind = "own"
        elif previous is not None and _multiple(grad - previous, own):
            kind = "accumulated"
        elif _multiple(grad, self.gradient(params, x, self.y[in_order])):
            kind = "misaligned"
        elif _multiple(grad, self.gradient(params, x, self.y[index], training=False)):
            kind = "eval_mode"
        else:
            kind = "unexplained"
        evidence.kinds.append(kind)
        evidence.batches.append(index)
        return grad

    def step(self, after, before, evidence, event: dict) -> None:
        if _same(after, before):
            evidence.idle_steps += 1
            evidence.idle[idle_cause(event)] += 1
        else:
            evidence.steps += 1

    # ------------------------------------------------------------------ recomputation

    def images(self, x) -> torch.Tensor | None:
        """The stamped samples in x, if x is exactly (up to a per-sample a * x + b) the grader's
        images; None otherwise."""
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.dim() >= 2
                and 0 < len(x) <= fx.FIT_N and x[0].numel() == 784):
            raise Unreadable("batch")
        flat = x.reshape(len(x), -1).double()
        index = fx.read_stamp(flat)
        if index is None or int(index.max()) >= fx.FIT_N:
            return None
        offset, unit = flat[:, 1:2], flat[:, 2:3] - flat[:, 1:2]
        expected = self.x[index].double() * unit + offset
        scale = float(expected.abs().max()) or 1.0
        return index if float((flat - expected).abs().max()) <= 1e-4 * scale else None

    def gradient(self, params, x, y, training: bool = True) -> torch.Tensor:
        self.load(params)
        self.body.train(training)
        loss = F.cross_entropy(self.body(x.float()), y)
        self.body.train()
        return fx.flat(torch.autograd.grad(loss, list(self.body.parameters())))

    def loss(self, params) -> float:
        self.load(params)
        with torch.no_grad():
            return F.cross_entropy(self.body(self.x), self.y).item()

    def load(self, params) -> None:
        torch.nn.utils.vector_to_parameters(params, self.body.parameters())

    def vector(self, value) -> torch.Tensor:
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.float32
                and value.shape == (self.size,) and bool(torch.isfinite(value).all())):
            raise Unreadable("parameters")
        return value


IDLE_CAUSES = ("foreign", "before_backward", "no_gradient", "unchanged")


def idle_cause(event: dict) -> str:
    """Why a step left the parameters as they were, from what the probe saw at that step:
    an optimizer over other parameters, a step between a forward and its backward, a step that
    found no gradient (zero_grad between backward and step), or none of these (a learning rate
    of 0). A claim: it only chooses the words of a failure the parameters already prove."""
    if event.get("own") is False:
        return "foreign"
    if event.get("mid_pass") is True:
        return "before_backward"
    if event.get("gradient") is False:
        return "no_gradient"
    return "unchanged"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= PARAM_TOLERANCE * (float(b.abs().max()) + 1e-12)


def _multiple(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """got == c * expected for some c > 0 (a mean or a sum over the batch), up to rounding."""
    norm = float(expected.norm())
    if norm == 0:
        return float(got.norm()) == 0
    c = float(torch.dot(got, expected)) / norm ** 2
    return c > 0 and float((got - c * expected).norm()) <= GRAD_TOLERANCE * c * norm


_cache: list = []


def evidence(data: dict) -> Evidence:
    """The replay of one fit outcome, computed once for the six fit checks."""
    for held, result in _cache:
        if held is data:
            return result
    result = Replay().run(data)
    _cache[:] = _cache[-3:] + [(data, result)]
    return result
