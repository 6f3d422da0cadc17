"""Lesson 01's accuracy checks, from values the grader computes itself (issue 9, point 4).

The grader draws a secret for each grading and hands it to the jail. From it, the jail
(`probe_accuracy`) and the grader (the judges) build the same linear classifiers and the same
images; the student's accuracy runs in the jail on them and only the numbers it returns come
back.
Each classifier predicts right only while one rule is kept, so only an accuracy that keeps it
returns the value the grader computed in its own process:

    case      the classifier is right only ...               the rule it reveals
    value     always                                         argmax over dim=1, every chunk
                                                             counted, divided by len(y)
    chunks    on batches of at most MAX_CHUNK images         predict chunk by chunk
    eval      in eval mode (it is handed over training)      model.eval()
    no_grad   without gradients (handed over in eval mode)   torch.no_grad()
    restore   after the training forwards the grader runs    the mode is restored: a forward
              between calls, in the mode accuracy left        after accuracy trains only if
                                                             accuracy left the model training

Where a rule is broken the predictions move to the next class (argmax c becomes c + 1), so
the value falls from 20-90 % (the right fraction is drawn from the secret too) to about 3 %.
A value cannot be guessed: each case has hundreds of possible values, and each check needs
several cases right (a guess earns a point about once in a million gradings). The value
check accepts only the fraction; the others also accept the count of correct predictions
(returning it is the value check's bug).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from autograder.engine.checks import Verdict
from autograder.engine.probing import need, part, type_name
from autograder.lessons.common.judging import value_of

MAX_CHUNK = 1000          # the chunk size the lesson's accuracy(..., chunk_size=1000) uses
VALUE_CASES = {"1237 samples": 1237, "503 samples": 503, "10 samples": 10}  # primes: a last
CHUNK_CASES = {"3000 samples": 3000, "2000 samples": 2000}  # partial chunk; whole chunks here
MODE_N = 997              # one chunk: a bug with chunks is another check's
RIGHT = (0.2, 0.9)        # the fraction of right labels, drawn per case in this range
# restore: the logits' shift seen by each call (handed over training, after the grader's
# forward, handed over in eval mode, after another forward): a forward trains only in training
RESTORE_SHIFTS = (0, 1, 1, 1)


class Classifier(nn.Module):
    """A linear classifier with weights drawn from the secret; `rule` names the one condition
    under which its predictions are right (see the table above). Integer weights, binary
    images and biases k/16 make every logit exact in float32 and no two equal: the argmax
    is the same whatever the chunks the student's accuracy cuts."""

    def __init__(self, seed: int, rule: str):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(784, 10)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randint(-8, 9, (10, 784), generator=g))
            self.linear.bias.copy_(torch.arange(10) / 16)
        self.rule = rule
        self.register_buffer("forwards_in_training", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        logits = self.linear(x.reshape(len(x), -1))   # (B, 10)
        shift = self.broken(len(x))
        if self.rule == "restore" and self.training:
            self.forwards_in_training += 1
        return logits.roll(shift, dims=1)

    def broken(self, batch: int) -> int:
        if self.rule == "restore":
            return int(self.forwards_in_training)
        return int({"value": False, "chunks": batch > MAX_CHUNK, "eval": self.training,
                    "no_grad": torch.is_grad_enabled()}[self.rule])


@dataclass
class Case:
    model: Classifier
    x: torch.Tensor           # (n, 28, 28) images of 0s and 1s
    y: torch.Tensor           # (n,) labels
    steps: torch.Tensor       # (8, 28, 28): the grader's own forwards between calls (restore)

    def correct(self, shift: int) -> int:
        """How many predictions are right when the classifier's logits move by `shift`."""
        with torch.no_grad():
            logits = self.model.linear(self.x.reshape(len(self.x), -1)).roll(shift, dims=1)
        return int((logits.argmax(dim=1) == self.y).sum())


def build(secret: int, name: str, n: int, rule: str, shift: int = 0) -> Case:
    """One case, the same in the jail and in the grader: labels agree with the predictions
    the classifier makes, its logits moved by `shift`, a fraction of the time drawn in RIGHT."""
    seed = (secret + sum(map(ord, name)) * 7919) % 2 ** 62
    model = Classifier(seed, rule)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(n, 28, 28, generator=g) < 0.5).float()   # binary images
    with torch.no_grad():
        predicted = model.linear(x.reshape(n, -1)).roll(shift, dims=1).argmax(dim=1)
    other = torch.randint(0, 10, (n,), generator=g)
    right = RIGHT[0] + (RIGHT[1] - RIGHT[0]) * torch.rand((), generator=g)
    y = torch.where(torch.rand(n, generator=g) < right, predicted, other)
    return Case(model, x, y, torch.rand(8, 28, 28, generator=g))


def cases(secret: int) -> dict[str, Case]:
    built = {name: build(secret, name, n, "value") for name, n in VALUE_CASES.items()}
    built.update({name: build(secret, name, n, "chunks") for name, n in CHUNK_CASES.items()})
    built["eval"] = build(secret, "eval", MODE_N, "eval")
    built["no_grad"] = build(secret, "no_grad", MODE_N, "no_grad")
    built["restore"] = build(secret, "restore", MODE_N, "restore", shift=1)
    return built


# ----------------------------------------------------------------------------- in the jail

def probe_accuracy(ns: dict, secret: int) -> dict:
    """The student's accuracy on each case; only the values it returns come back (a claim
    that the judges compare with the values they compute from the same secret)."""
    accuracy = need(ns, "accuracy")
    built = cases(secret)
    out = {name: part(lambda c=built[name]: describe(accuracy(c.model, c.x, c.y)))
           for name in (*VALUE_CASES, *CHUNK_CASES)}
    built["eval"].model.train()
    built["no_grad"].model.eval()
    for name in ("eval", "no_grad"):
        out[name] = part(lambda c=built[name]: describe(accuracy(c.model, c.x, c.y)))
    out["restore"] = part(lambda: _restore(accuracy, built["restore"]))
    return out


def _restore(accuracy, case: Case) -> list[dict]:
    """accuracy on a model handed over training, then in eval mode; after each call the grader
    runs a forward in whatever mode accuracy left, which trains the classifier only if it is
    training, and calls accuracy again."""
    model, values = case.model, []
    for start in ("train", "eval"):
        model.train(start == "train")
        values.append(describe(accuracy(model, case.x, case.y)))
        model(case.steps)
        values.append(describe(accuracy(model, case.x, case.y)))
    return values


def describe(value) -> dict:
    number = None
    try:
        number = float(value)
    except Exception:
        pass
    return {"type": type_name(value), "is_float": isinstance(value, float), "value": number,
            "repr": repr(value)[:80]}


# ----------------------------------------------------------------------------- in the grader

def _expected(data) -> dict[str, Case]:
    """The cases of the secret the grader drew (the jail cannot choose it: see with_secret)."""
    secret = data.get("secret") if isinstance(data, dict) else None
    if type(secret) is not int:
        raise ValueError("no secret was drawn for the accuracy cases")
    return _cases(secret)


@functools.lru_cache(maxsize=4)  # built once for the four judges of one grading
def _cases(secret: int) -> dict[str, Case]:
    return cases(secret)


def _got(data, name: str, ctx, n: int):
    """(the number accuracy returned, its description, None) or (None, None, a failing
    Verdict)."""
    entry = data.get(name) if isinstance(data, dict) else None
    if not (isinstance(entry, dict) and isinstance(entry.get("ok"), bool)):
        return None, None, Verdict(False, f"the result of accuracy on {n} samples did not come "
                                          f"back intact")
    value, failed = value_of(entry, ctx, f"on {n} samples accuracy raised")
    if failed:
        if "must match the size" in failed.message:
            failed.message += " — take the argmax over dim=1 (the classes), not dim=0"
        return None, None, failed
    got = value.get("value") if isinstance(value, dict) else None
    if not isinstance(got, float):
        return None, value, Verdict(False, f"on {n} samples accuracy returned "
                                           f"{_repr(value)}, not a number")
    return got, value, None


def _repr(value) -> str:
    return str(value.get("repr")) if isinstance(value, dict) else "nothing readable"


def _same(got: float, correct: int, n: int, count_too: bool) -> bool:
    return abs(got - correct / n) < 0.5 / n or (count_too and abs(got - correct) < 0.5)


def accuracy_matches_reference(data, ctx) -> Verdict:
    expected = _expected(data)
    for name, n in VALUE_CASES.items():
        got, _, failed = _got(data, name, ctx, n)
        if failed:
            return failed
        correct = expected[name].correct(0)
        if not _same(got, correct, n, count_too=False):
            return Verdict(False, _wrong_value(name, n, got, correct),
                           {"case": name, "got": got, "expected": correct / n})
    return Verdict(True)


def _wrong_value(name, n, got, correct) -> str:
    if abs(got - correct) < 0.5:
        return (f"on {name} accuracy returned {got:g}, the number of correct predictions: "
                f"divide by the number of samples to get a fraction")
    if got > 1:
        return f"on {name} accuracy returned {got:.4g}, {ABOVE_ONE}"
    return (f"on {name} accuracy returned {got:.4f}, expected {correct / n:.4f}: take the argmax "
            f"over dim=1 (the classes), compare it with y, count every chunk including the last "
            f"partial one, and divide by len(y)")


ABOVE_ONE = ("more than 1, which a fraction of correct predictions never is: more pairs "
             "were counted than there are images. Typically predictions shaped (B, 1) "
             "(argmax(dim=1, keepdim=True), or labels shaped (B, 1)) were compared with == to "
             "labels shaped (B,): broadcasting makes a (B, B) table of every prediction against "
             "every label. Compare two tensors of shape (B,): logits.argmax(dim=1) == labels")
UNVERIFIED = ("so this could not be verified: make accuracy return the right value first "
              "(see accuracy_matches_reference)")


def accuracy_in_chunks(data, ctx) -> Verdict:
    expected = _expected(data)
    for name, n in CHUNK_CASES.items():
        got, _, failed = _got(data, name, ctx, n)
        if failed:
            return failed
        case = expected[name]
        if _same(got, case.correct(0), n, count_too=True):
            continue
        details = {"case": name, "got": got, "expected": case.correct(0) / n}
        if _same(got, case.correct(1), n, count_too=True):
            return Verdict(False, f"accuracy ran the model on more than {MAX_CHUNK} images at "
                                  f"once (the grader's model gives wrong answers then): predict "
                                  f"in chunks of at most {MAX_CHUNK} images, so that any number "
                                  f"of images fits in memory", details)
        return Verdict(False, f"on {name} accuracy returned {got:.4f}, neither the right value "
                              f"nor the value of predicting them at once, {UNVERIFIED}", details)
    return Verdict(True)


def accuracy_returns_float(data, ctx) -> Verdict:
    expected = _expected(data)
    for name, n in VALUE_CASES.items():
        got, value, failed = _got(data, name, ctx, n)
        if failed:
            if value and "not a number" in failed.message:
                failed.message += ": return correct / len(x), a Python float"
            return failed
        if not value.get("is_float"):
            fix = "call .item() on it" if "Tensor" in str(value.get("type")) else \
                "return correct / len(x)"
            return Verdict(False, f"accuracy returned {_repr(value)} (type {value.get('type')}), "
                                  f"expected a Python float: {fix}", {"value": value})
        if got > 1:
            return Verdict(False, f"accuracy returned {got:.4g} on {name}, a float above 1: "
                                  f"see accuracy_matches_reference")
        if not _same(got, expected[name].correct(0), n, count_too=False):
            return Verdict(False, f"accuracy returned a float, but not the right one on {name}, "
                                  f"{UNVERIFIED}")
    return Verdict(True)


def accuracy_keeps_mode(data, ctx) -> Verdict:
    expected = _expected(data)
    for name, message in (("eval", RAN_TRAINING), ("no_grad", RECORDED_GRADIENTS)):
        got, _, failed = _got(data, name, ctx, MODE_N)
        if failed:
            return failed
        case = expected[name]
        if not _same(got, case.correct(0), MODE_N, count_too=True):
            broken = _same(got, case.correct(1), MODE_N, count_too=True)
            return Verdict(False, message if broken else f"on {MODE_N} samples accuracy returned "
                                                         f"{got:.4f}, {UNVERIFIED}")
    return _restored(data, expected["restore"], ctx)


RAN_TRAINING = ("the model ran in training mode (the grader's model answers wrongly then): "
                "call model.eval() before predicting (dropout and BatchNorm behave differently "
                "in training)")
RECORDED_GRADIENTS = ("gradients were recorded while predicting (the grader's model answers "
                      "wrongly then): wrap the predictions in `with torch.no_grad():`")
LEFT_IN_EVAL = ("accuracy left a model that was training in eval mode (the grader's next "
                "forward did not train it): note `was_training = model.training` first and end "
                "with model.train(was_training)")
LEFT_TRAINING = ("accuracy switched a model that was in eval mode to training mode (the "
                 "grader's next forward trained it): restore the mode it had, "
                 "model.train(was_training)")


def _restored(data, case: Case, ctx) -> Verdict:
    entry = data.get("restore") if isinstance(data, dict) else None
    values, failed = value_of(entry, ctx, f"on {MODE_N} samples accuracy raised") \
        if isinstance(entry, dict) and isinstance(entry.get("ok"), bool) else (None, None)
    if failed:
        return failed
    if not (isinstance(values, list) and len(values) == len(RESTORE_SHIFTS)):
        return Verdict(False, "the results of accuracy did not come back intact")
    for i, (value, shift) in enumerate(zip(values, RESTORE_SHIFTS)):
        got = value.get("value") if isinstance(value, dict) else None
        if isinstance(got, float) and _same(got, case.correct(shift), MODE_N, count_too=True):
            continue
        if i == 1:
            return Verdict(False, LEFT_IN_EVAL)
        if i == 3:
            return Verdict(False, LEFT_TRAINING)
        return Verdict(False, f"on {MODE_N} samples accuracy returned {_repr(value)}, "
                              f"{UNVERIFIED}")
    return Verdict(True)
