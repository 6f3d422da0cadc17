"""The hidden check every lesson shares: the student's model, trained in the jail on the
training split only, exported, and scored in the clean child on the test images, shuffled and
noised from a secret the grader draws at evaluation time (fixtures.hidden_sets).

A lesson describes its hidden check with a `HiddenSpec` (the model class, how it is trained,
for how long, what to tell a student) and binds the probes and the judge to it. The minimum
test accuracy is the Lesson record's `thresholds["min_test_accuracy"]`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from autograder.engine.checks import Verdict
from autograder.engine.probing import need, part
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import graphs
from autograder.lessons.common.judging import disagreement, percent
from autograder.lessons.common.model import logits_of, plain


@dataclass(frozen=True)
class HiddenSpec:
    name: str             # the student's model class: "MyModel"
    needs: tuple          # the submission's names the training uses, model class first
    train: Callable       # (ns, model, x, y, x_val, y_val, epochs, batch_size) -> None
    trainer: str          # who trains, for messages: "your fit"
    epochs: int
    batch_size: int
    lesson: str           # the package whose LESSON holds the budget and the threshold
    layout: tuple         # one image's shape, as the training feeds it: (28, 28)
    fixed_batch: str      # why export failed when forward fixed the batch size
    unchanged: str        # why training changed no parameter, and the fix
    too_weak: str         # the likely causes of a test accuracy under the threshold
    # In the clean child, on the trained program: why it is not the kind of model the lesson
    # asks for (lesson 02: a CNN), whatever its accuracy, or None
    requirement: Callable[[torch.nn.Module], str | None] | None = None
    train_images: int | None = None  # the first N images of the training split (None: all)

    def record(self):
        return importlib.import_module(self.lesson).LESSON

    def threshold(self) -> float:
        return float(self.record().thresholds["min_test_accuracy"])

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), *self.layout)


# ----------------------------------------------------------------------------- in the jail

def probe(ns: dict, spec: HiddenSpec) -> dict:
    """The student's model trained on the training set, exported. What this returns is a
    claim; the clean child scores the exported program (probe_eval)."""
    need(ns, *spec.needs)  # MissingName for the first name the submission lacks
    cls = ns[spec.name]
    data = fx.mnist()
    n = spec.train_images or len(data["x_train"])
    x, y = data["x_train"][:n].clone(), data["y_train"][:n].clone()
    x_val, y_val = x[:fx.HIDDEN_VAL].clone(), y[:fx.HIDDEN_VAL].clone()
    model = cls()
    before = [p.detach().clone() for p in model.parameters()]
    spec.train(ns, model, x, y, x_val, y_val, spec.epochs, spec.batch_size)
    changed = sum(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
    model.eval()
    example = spec.images(x[:graphs.EXAMPLE_BATCH])
    with torch.no_grad():
        eager = part(lambda: plain(logits_of(model, spec.images(x[:fx.AGREE_N]))))
    too_large = graphs.over_budget(model, spec.record().budgets["numbers"])
    exported = ({"export_error": too_large} if too_large
                else graphs.export(model, example, fixed_batch=spec.fixed_batch))
    blobs = {"model": exported.pop("blob")} if "blob" in exported else {}
    return {"parameters": len(before), "changed": changed, "eager": eager, "blobs": blobs,
            **exported}


# ----------------------------------------------------------------------------- in the clean child

def probe_eval(ns: dict, paths: dict, secret: int, spec: HiddenSpec) -> dict:
    """Check the exported program, then predict the test images and the training images picked
    by the grader's secret, and the agreement images (logits)."""
    if "model" not in paths:
        raise graphs.GraphRejected("no trained model came back")
    module = graphs.load(Path(paths["model"]).read_bytes(), spec.record().budgets["numbers"])
    sets = fx.hidden_sets(secret, spec.train_images)
    out = {name: graphs.predict(module, spec.images(x), fx.EXPORT_CHUNK).argmax(dim=1)
           .to(torch.uint8) for name, (x, _) in sets.items()}
    agree = spec.images(fx.train_slice(0, fx.AGREE_N)[0])
    out["agree"] = graphs.predict(module, agree, fx.EXPORT_CHUNK)
    if spec.requirement is not None:
        out["unmet"] = part(lambda: spec.requirement(module))
    return out


# ----------------------------------------------------------------------------- the judge

def min_test_accuracy(data, ctx, spec: HiddenSpec) -> Verdict:
    """Scores come from the clean child, on images and a secret the jail never saw; what the
    jail reported ("changed", its eager outputs) can only fail the check, never pass it."""
    if "export_error" in data:
        return Verdict(False, f"the grader could not follow your trained model's forward as "
                              f"PyTorch operations to test it ({data['export_error']}): forward "
                              f"must take a batch of images and return the logits tensor, with "
                              f"no Python-side effects")
    if data.get("changed") == 0:
        return Verdict(False, spec.unchanged, {"changed": 0})
    outcome = data["evaluation"]
    if not outcome["ok"]:
        return Verdict(False, _rejected(outcome["error"], ctx), {"error": outcome["error"]})
    differs = disagreement(data.get("eager"), outcome["data"]["agree"])
    if differs:
        return Verdict(False, differs)
    verdict = _threshold(_scores(outcome["data"], data["secret"], spec), spec)
    unmet = _unmet(outcome["data"], spec)
    if unmet:
        return Verdict(False, f"{unmet} (test accuracy {verdict.details['test_accuracy']:.2%}: "
                              f"it does not count)", {**verdict.details, "unmet": unmet})
    return verdict


def _unmet(found: dict, spec: HiddenSpec) -> str | None:
    """Why the trained program is not the kind of model the lesson asks for, or None."""
    if spec.requirement is None:
        return None
    part = found.get("unmet")
    if not (isinstance(part, dict) and part.get("ok")):
        return "the grader could not inspect your trained model's layers"
    return part["value"] if isinstance(part["value"], str) else None


def public_line(details: dict) -> str | None:
    """What a student sees of the hidden check's details: the accuracy against the bar."""
    test, minimum = details.get("test_accuracy"), details.get("threshold")
    if not (isinstance(test, float) and isinstance(minimum, float)):
        return None
    return f"test accuracy {test:.2%}, at least {percent(minimum)} needed"


def _rejected(error: dict, ctx) -> str:
    if error.get("type") == "GraphRejected":
        return f"your trained model was not tested: {error.get('message')}"
    return ctx.failure(error, "hidden_eval")


def _scores(predictions: dict, secret: int, spec: HiddenSpec) -> dict:
    scores = {}
    for name, labels in fx.hidden_labels(secret, spec.train_images).items():
        predicted = predictions[name]
        if not isinstance(predicted, torch.Tensor) or predicted.shape != labels.shape:
            raise ValueError(f"malformed predictions for the {name} images")
        scores[name] = (predicted.long() == labels).float().mean().item()
    return scores


def _over_train_tolerance(test: float, train: float) -> float:
    """How much better than on its training images a model may do on the test images by chance
    alone: TEST_OVER_TRAIN, or OVER_TRAIN_SE standard errors of the difference of the two
    accuracies (10,000 and TRAIN_CHECK images) when that is more: 2.5 % for a model at 63 %
    (one differed by 1.7 % in CI), 0.9 % for one at 97 %, where TEST_OVER_TRAIN applies."""
    n_test = len(fx.mnist()["y_test"])
    variance = test * (1 - test) / n_test + train * (1 - train) / fx.TRAIN_CHECK
    return max(fx.TEST_OVER_TRAIN, fx.OVER_TRAIN_SE * variance ** 0.5)


def _threshold(scores: dict, spec: HiddenSpec) -> Verdict:
    test, train, minimum = scores["test"], scores["train"], spec.threshold()
    details = {"test_accuracy": test, "train_accuracy": train, "threshold": minimum,
               "epochs": spec.epochs, "batch_size": spec.batch_size, "test_noise": fx.TEST_NOISE}
    budget = f"{spec.epochs} epoch(s) of {spec.trainer}, batch_size={spec.batch_size}"
    if test < minimum:
        return Verdict(False, f"test accuracy {test:.2%} after {budget} is below "
                              f"{percent(minimum)}: {spec.too_weak}", details)
    if test > train + _over_train_tolerance(test, train):
        return Verdict(False, f"test accuracy {test:.2%} but only {train:.2%} on training images "
                              f"the model was trained on: the model must learn from the training "
                              f"set through {spec.trainer}, not recognise the test images",
                       details)
    return Verdict(True, f"test accuracy {test:.2%} after {budget} "
                         f"(at least {percent(minimum)} needed)", details)
