"""Judges for lesson 01: plain data from a probe -> Verdict. They run in the grader's process;
nothing here touches the student's code."""
from __future__ import annotations

import math
from functools import partial

import torch

from autograder.engine.checks import Verdict
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import hidden, model_judges
from autograder.lessons.mnist_dnn import replay
from autograder.lessons.mnist_dnn.probes import HIDDEN, MODEL

# The model checks and the hidden check are every lesson's, bound to lesson 01's MyModel and fit
output_shape = partial(model_judges.output_shape, spec=MODEL)
batch_independence = partial(model_judges.batch_independence, spec=MODEL)
logits_not_probabilities = partial(model_judges.logits_not_probabilities, spec=MODEL)
gradients_reach_all_parameters = partial(model_judges.gradients_reach_all_parameters, spec=MODEL)
initial_loss = partial(model_judges.initial_loss, spec=MODEL)
finite_outputs = partial(model_judges.finite_outputs, spec=MODEL)
min_test_accuracy = partial(hidden.min_test_accuracy, spec=HIDDEN)


# ----------------------------------------------------------------------------- fit

def fit_returns_history(data, ctx) -> Verdict:
    history, epochs = data["history"], fx.FIT_EPOCHS
    if history["type"] == "NoneType":
        return Verdict(False, "fit returned None: end fit with `return history`")
    values = history["values"]
    missing = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k not in values]
    if missing:
        return Verdict(False, f"the {history['type']} returned by fit has no "
                              f"{', '.join(missing)}: record loss, accuracy, val_loss and "
                              f"val_accuracy once per epoch and return that history")
    for key, series in values.items():
        if len(series) != epochs or not all(math.isfinite(v) for v in series):
            return Verdict(False, f"history['{key}'] holds {len(series)} values for {epochs} "
                                  f"epochs (or a NaN): record each metric once per epoch",
                           {"values": values})
    return Verdict(True, details={"values": values})


def _replayed(data) -> tuple[replay.Evidence | None, Verdict | None]:
    """The grader's replay of the training fit claims to have done, or why it failed."""
    try:
        return replay.evidence(data), None
    except (replay.Unreadable, KeyError, TypeError, AttributeError) as error:
        return None, Verdict(False, f"the grader could not replay the training your fit did "
                                    f"(its {error} did not come back intact): fit must train "
                                    f"the model it is given, with the batches of x_train it "
                                    f"is given")


MISALIGNED = ("each batch's labels were not its images' labels: the labels came in their "
              "original order while the images were shuffled — index x_train and y_train "
              "with the same indices, x_train[batch] and y_train[batch]")
TRAINED_IN_EVAL = ("the model was trained in eval mode (the grader hands it to fit in eval mode, "
                   "and its gradients were those of eval mode, where dropout and batch norm "
                   "behave as for predicting): call model.train() at the start of every epoch, "
                   "before its mini-batches")


def fit_loss_decreases(data, ctx) -> Verdict:
    ev, failed = _replayed(data)
    if failed:
        return failed
    before, after = ev.loss_before, ev.loss_after
    details = {"loss_before": before, "loss_after": after, "steps": ev.steps}
    if "misaligned" in ev.kinds:
        return Verdict(False, MISALIGNED, details)
    if "eval_mode" in ev.kinds:
        return Verdict(False, TRAINED_IN_EVAL, details)
    if ev.broken:
        return Verdict(False, f"{ev.broken}: train with loss.backward() and optimizer.step() "
                              f"only", details)
    if after < 0.95 * before and not (ev.steps and ev.explained):
        return Verdict(False, f"the loss went down, but not through optimizer steps on "
                              f"gradients of the batches: {UNEXPLAINED}", details)
    if after < 0.95 * before:
        return Verdict(True, f"training loss {before:.3f} → {after:.3f}", details)
    if after > 1.05 * before:
        why = ("the loss went up: the learning rate is too high — try 1e-3 with Adam or 0.1 "
               "with SGD")
    elif ev.idle_steps and not ev.steps:
        why = _idle(ev)
    elif not ev.steps:
        why = "no optimizer step ran: call optimizer.step() after loss.backward()"
    else:
        why = "check that each step runs zero_grad → forward → loss → backward → step"
    return Verdict(False, f"the training loss did not go down ({before:.3f} → {after:.3f} "
                          f"after {fx.FIT_EPOCHS} epochs on {fx.FIT_N} images): {why}", details)


ORDER = "each step runs zero_grad → forward → loss → backward → step, in that order"
IDLE = {  # replay.IDLE_CAUSES: why optimizer steps changed nothing
    "foreign": "the optimizer holds parameters that are not the model's: build it from the "
               "`model` given to fit, torch.optim.Adam(model.parameters(), ...)",
    "before_backward": f"it ran before loss.backward(), when the batch's gradients did not "
                       f"exist yet: {ORDER}",
    "no_gradient": f"it found no gradients: optimizer.zero_grad() ran between loss.backward() "
                   f"and optimizer.step() and erased them — {ORDER}",
    "unchanged": "it left them as they were although they had gradients: is the learning "
                 "rate 0?",
}
NO_BACKWARD = (f"no backward pass reached them: call loss.backward() on the loss of "
               f"model(x_batch) before optimizer.step() — {ORDER}")


def _idle(ev) -> str:
    """Why fit's optimizer steps left the model as it was."""
    cause = ev.idle_cause or "unchanged"
    why = NO_BACKWARD if cause != "foreign" and not ev.kinds else IDLE[cause]
    return f"optimizer.step() never changed the model's parameters — {why}"


def _epochs(ev) -> tuple[list[torch.Tensor], torch.Tensor]:
    seen = torch.cat(ev.batches) if ev.batches else torch.zeros(0, dtype=torch.long)
    per = len(seen) // fx.FIT_EPOCHS
    return [seen[i * per:(i + 1) * per] for i in range(fx.FIT_EPOCHS)], seen


def _batches(data) -> tuple[replay.Evidence | None, Verdict | None]:
    """The replayed batches, if every backward pass was explained by its batch."""
    ev, failed = _replayed(data)
    if failed:
        return None, failed
    if not ev.kinds:
        return None, Verdict(False, "fit never ran a forward and backward pass on the model "
                                    "in training mode")
    if "unknown" in ev.kinds:
        return None, Verdict(False, "the grader could not recognise the images given to the "
                                    "model: pass rows of x_train (e.g. x_train[indices]) to the "
                                    "model unchanged")
    if not ev.explained:
        return None, Verdict(False, UNEXPLAINED)
    return ev, None


UNEXPLAINED = ("a gradient was not the gradient of its batch's loss: compute "
               "nn.CrossEntropyLoss()(model(x_batch), y_batch) on each batch, then backward")


def fit_visits_every_sample(data, ctx) -> Verdict:
    n, batch, epochs = fx.FIT_N, fx.FIT_BATCH, fx.FIT_EPOCHS
    ev, failed = _batches(data)
    if failed:
        return failed
    parts, seen = _epochs(ev)
    ok = len(seen) == n * epochs and all(bool((p.sort().values == torch.arange(n)).all())
                                         for p in parts)
    per_epoch = len(seen) / epochs
    details = {"samples_per_epoch": per_epoch, "n": n, "batch_size": batch}
    if ok:
        return Verdict(True, f"each epoch used all {n} samples once", details)
    if per_epoch == n - n % batch:
        return Verdict(False, f"each epoch trained on {per_epoch:.0f} of {n} samples: the last, "
                              f"partial batch ({n % batch} samples) is skipped — loop with "
                              f"range(0, N, batch_size) and slice [i:i + batch_size]", details)
    if per_epoch == n:
        return Verdict(False, "some samples were used twice in an epoch and others never: take "
                              "the batches from one permutation, torch.randperm(N), instead of "
                              "drawing random indices", details)
    return Verdict(False, f"each epoch should use each of the {n} samples exactly once, but "
                          f"{per_epoch:g} samples per epoch were used: slice consecutive batches "
                          f"of one permutation, the last partial batch included", details)


def fit_reshuffles(data, ctx) -> Verdict:
    ev, failed = _batches(data)
    if failed:
        return failed
    parts, _ = _epochs(ev)
    if len(parts[0]) == 0:
        return Verdict(False, "fit trained on fewer batches than it has epochs")
    if all(bool((p == p.sort().values).all()) for p in parts):
        return Verdict(False, "the samples came in their original order: shuffle each epoch, "
                              "e.g. permutation = torch.randperm(N), then slice it")
    if all(p.shape == parts[0].shape and bool((p == parts[0]).all()) for p in parts[1:]):
        return Verdict(False, "every epoch used the same order: draw a new torch.randperm(N) "
                              "at the start of each epoch, inside the epoch loop")
    return Verdict(True)


def fit_step_count(data, ctx) -> Verdict:
    n, batch, epochs = fx.FIT_N, fx.FIT_BATCH, fx.FIT_EPOCHS
    ev, failed = _replayed(data)
    if failed:
        return failed
    steps, expected = ev.steps, epochs * math.ceil(n / batch)
    details = {"steps": steps, "idle_steps": ev.idle_steps, "expected": expected}
    if not ev.explained and ev.kinds:
        return Verdict(False, UNEXPLAINED, details)
    if steps == expected and not ev.idle_steps and not ev.broken:
        return Verdict(True, f"{steps} optimizer steps = {epochs} epochs × ⌈{n}/{batch}⌉",
                       details)
    if ev.idle_steps and not steps:
        why = _idle(ev)
    elif ev.broken:
        why = ev.broken
    elif steps == 0:
        why = "call optimizer.step() after loss.backward(), once per mini-batch"
    elif steps == epochs * (n // batch):
        why = "the last, partial batch gets no step (see fit_visits_every_sample)"
    elif steps == epochs:
        why = "optimizer.step() runs once per epoch: move it into the mini-batch loop"
    elif _loops_with_constant(data, steps):
        why = (f"your batches hold BATCH_SIZE = {data['constant']} samples, not the batch_size "
               f"argument fit was given: use batch_size (the argument), not the constant")
    else:
        why = "call optimizer.step() exactly once per mini-batch of batch_size samples"
    return Verdict(False, f"{steps} optimizer steps in {epochs} epochs on {n} samples with "
                          f"batch_size={batch}, expected {expected}: {why}", details)


def _loops_with_constant(data, steps: int) -> bool:
    constant, n = data.get("constant"), fx.FIT_N
    return (type(constant) is int and 0 < constant != fx.FIT_BATCH
            and steps == fx.FIT_EPOCHS * math.ceil(n / constant))


def fit_zero_grad(data, ctx) -> Verdict:
    ev, failed = _replayed(data)
    if failed:
        return failed
    if not ev.kinds:
        return Verdict(False, "fit never ran a forward and backward pass on the model in "
                              "training mode")
    if "accumulated" in ev.kinds:
        return Verdict(False, "the gradients of one batch were added to those of earlier "
                              "batches: call optimizer.zero_grad() before loss.backward() in "
                              "every step (and build the optimizer over model.parameters())",
                       {"kinds": ev.kinds})
    if "unknown" in ev.kinds:
        return Verdict(False, "the grader could not recognise the images given to the model: "
                              "pass rows of x_train (e.g. x_train[indices]) to the model "
                              "unchanged")
    if not ev.explained:
        return Verdict(False, UNEXPLAINED, {"kinds": ev.kinds})
    return Verdict(True)
