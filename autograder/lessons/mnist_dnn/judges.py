"""Judges for lesson 01: plain data from a probe -> Verdict. They run in the grader's process;
nothing here touches the student's code."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from autograder.engine.checks import Verdict
from autograder.lessons.common import fixtures as fx
from autograder.lessons.mnist_dnn import replay
from autograder.lessons.mnist_dnn.probes import CHUNKED_CASE, MAIN, MATCH_CASES

FLATTEN = ("flatten the images with x.reshape(len(x), -1) or nn.Flatten(), never with a "
           "fixed batch size")


def _part(part: dict, ctx, doing: str):
    """The value of a probe part, or a failing Verdict that explains its error."""
    if part["ok"]:
        return part["value"], None
    error = part["error"]
    text = ctx.error_text(error)
    return None, Verdict(False, text if error["type"] in SELF_EXPLAINING else f"{doing}: {text}")


# errors whose explanation needs no "while doing X" in front
SELF_EXPLAINING = ("NotImplementedError", "MissingName", "SystemExit")


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    """Equal up to float rounding, relative to the scale of what is compared (NaN == NaN)."""
    if a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return False
    a, b = a.double().nan_to_num(0.0), b.double().nan_to_num(0.0)
    if a.numel() == 0:
        return True
    scale = max(float(a.abs().max()), float(b.abs().max()))
    return float((a - b).abs().max()) <= rel * scale


# ----------------------------------------------------------------------------- model

def _evidence(data, ctx) -> tuple[dict | None, Verdict | None]:
    """The model checks' evidence, gathered by the clean child from the exported programs.
    What the jail reported (its eager outputs, export errors) can only fail a check."""
    eager = data["eager"]
    _, failed = _part(eager, ctx, "on a batch of 64 images your model raised")
    if failed:
        return None, failed
    outcome = data["evaluation"]
    if not outcome["ok"]:
        error, why = outcome["error"], (data.get("export_errors") or {}).get(MAIN)
        if error.get("type") == "GraphRejected" and isinstance(why, str):
            return None, Verdict(False, f"your model could not be exported for checking: {why}")
        if error.get("type") == "GraphRejected":
            return None, Verdict(False, f"your model was not checked: {error.get('message')}")
        return None, Verdict(False, ctx.failure(error, "model_eval"), {"error": error})
    evidence = outcome["data"]
    agree, failed = _part(evidence["agree"], ctx, "the exported model raised")
    if failed:
        return None, failed
    disagreement = _disagreement(eager, agree)
    if disagreement:
        return None, Verdict(False, disagreement)
    return evidence, None


def output_shape(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    for label, why in (data.get("export_errors") or {}).items():
        return Verdict(False, f"for {label} inputs your model could not be exported: {why}")
    for label, part in evidence["shapes"].items():
        n = int(label.strip("(").split(",")[0])
        shape, failed = _part(part, ctx, f"for an input of shape {label} your model raised")
        if failed:
            hint = FLATTEN if "invalid for input of size" in failed.message else ""
            return Verdict(False, f"{failed.message}{' — ' + hint if hint else ''}")
        if shape != [n, 10]:
            return Verdict(False, f"for an input of shape {label} your model returned shape "
                                  f"{tuple(shape)} instead of ({n}, 10): {FLATTEN}, and end "
                                  f"with a layer of 10 outputs")
    return Verdict(True, details={"inputs": list(evidence["shapes"])})


def batch_independence(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    pair, failed = _part(evidence["pair"], ctx, "on a batch of 64 images your model raised")
    if failed:
        return failed
    half = fx.MODEL_BATCH // 2
    a, b = pair["first"][:half], pair["second"][:half]
    change = float((a - b).abs().max())
    if close(a, b):  # relative: softmax(dim=0) outputs are ~1/64 and change by ~1e-4
        return Verdict(True, details={"max_change": change})
    return Verdict(False, f"the outputs for the same {half} images changed (by up to "
                          f"{change:.3g}) when the other {half} images of the batch changed: "
                          f"something mixes samples across the batch — typically a softmax or "
                          f"normalisation over dim=0 (the batch); use dim=1, or better no "
                          f"softmax at all", {"max_change": change})


def _names(names) -> list[str]:
    """The parameter names the jail reported: they can only add parameters a gradient missed."""
    if not (isinstance(names, list) and len(names) <= 1000
            and all(isinstance(n, str) and len(n) <= 200 for n in names)):
        raise ValueError("malformed parameter names")
    return names


def logits_not_probabilities(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    logits, failed = _part(evidence["init"], ctx, "on 512 images your model raised")
    if failed:
        return failed
    rows = logits.sum(dim=1)
    if bool((logits >= 0).all()) and bool(((rows - 1).abs() < 1e-3).all()):
        return Verdict(False, details={"row_sums": rows[:4].tolist()})
    return Verdict(True)


def gradients_reach_all_parameters(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    grads, failed = _part(evidence["grads"], ctx, "computing the loss gradient raised")
    if failed:
        if "does not require grad" in failed.message:
            return Verdict(False, "no gradient reaches any parameter: the output is cut off from "
                                  "the graph (a .detach(), .data, .numpy() or torch.no_grad() "
                                  "in forward)")
        return failed
    grads = grads["grads"]
    grads.update({name: None for name in _names(data["parameters"]) if name not in grads})
    if not grads:
        return Verdict(False, "MyModel has no trainable parameters: create its layers in "
                              "__init__ as attributes (self.fc1 = nn.Linear(...))")
    missing = [name for name, g in grads.items() if g is None]
    if missing:
        return Verdict(False, f"no gradient reached {', '.join(missing)}: a .detach() or .data "
                              f"in forward cuts the graph before them, or the layer is defined "
                              f"but never used in forward", {"missing": missing})
    zero = [name for name, g in grads.items() if g == 0]
    if zero:
        return Verdict(False, f"the gradient of {', '.join(zero)} is exactly zero, so training "
                              f"never changes {'it' if len(zero) == 1 else 'them'}: something in "
                              f"forward multiplies by 0 or cuts these layers off (e.g. a "
                              f"`* 0`, a mask of zeros, a ReLU that is never active)",
                       {"zero": zero})
    return Verdict(True, details={"parameters": len(grads)})


def initial_loss(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    logits, failed = _part(evidence["init"], ctx, "on 512 images your model raised")
    if failed:
        return failed
    _, y = fx.train_slice(0, fx.INIT_SAMPLES)
    loss = F.cross_entropy(logits, y).item()
    details = {"loss": loss, "expected": math.log(10)}
    if abs(loss - math.log(10)) <= 0.6:
        return Verdict(True, f"loss at initialisation {loss:.2f}, close to ln 10 ≈ 2.30", details)
    return Verdict(False, f"the loss of the untrained model is {loss:.2f}, expected near ln 10 ≈ "
                          f"2.30 (10 equally likely classes): the initial outputs are far too "
                          f"large or one-sided — keep PyTorch's default initialisation and do "
                          f"not scale the logits", details)


def finite_outputs(data, ctx) -> Verdict:
    evidence, failed = _evidence(data, ctx)
    if failed:
        return failed
    inputs = {"init": "real images", "blank": "blank (all-zero) images",
              "white": "all-white images"}
    for key, name in inputs.items():
        out, failed = _part(evidence[key], ctx, f"on {name} your model raised")
        if failed:
            return failed
        if not bool(torch.isfinite(out).all()):
            return Verdict(False, f"your model outputs NaN or inf for {name}: avoid dividing by "
                                  f"something that can be 0 or taking the log of 0 (add a small "
                                  f"epsilon)")
    grads, failed = _part(evidence["grads"], ctx, "computing the loss gradient raised")
    if grads and not grads["train_finite"]:
        return Verdict(False, "your model outputs NaN or inf while computing the loss gradient")
    return Verdict(True)


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


def fit_loss_decreases(data, ctx) -> Verdict:
    ev, failed = _replayed(data)
    if failed:
        return failed
    before, after = ev.loss_before, ev.loss_after
    details = {"loss_before": before, "loss_after": after, "steps": ev.steps}
    if "misaligned" in ev.kinds:
        return Verdict(False, MISALIGNED, details)
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
        why = ("the optimizer holds parameters that are not the model's: build it from the "
               "`model` given to fit, torch.optim.Adam(model.parameters(), ...)")
    elif not ev.steps:
        why = "no optimizer step ran: call optimizer.step() after loss.backward()"
    else:
        why = "check that each step runs zero_grad → forward → loss → backward → step"
    return Verdict(False, f"the training loss did not go down ({before:.3f} → {after:.3f} "
                          f"after {fx.FIT_EPOCHS} epochs on {fx.FIT_N} images): {why}", details)


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
        why = ("optimizer.step() never changed the model's parameters: build the optimizer "
               "over the parameters of the `model` given to fit")
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


# ----------------------------------------------------------------------------- accuracy

def accuracy_matches_reference(data, ctx) -> Verdict:
    for name, (n, seed) in MATCH_CASES.items():
        value, failed = _part(data["cases"][name], ctx, f"on {name} accuracy raised")
        if failed:
            if "must match the size" in failed.message:
                failed.message += " — take the argmax over dim=1 (the classes), not dim=0"
            return failed
        expected = fx.lookup_expected(n, seed)
        got = value["value"]
        if got is None:
            return Verdict(False, f"accuracy returned {value['repr']}, not a number")
        if abs(got - expected) > 1e-4:
            return Verdict(False, _wrong_accuracy(name, n, got, expected),
                           {"case": name, "got": got, "expected": expected})
    return Verdict(True)


def accuracy_in_chunks(data, ctx) -> Verdict:
    """Whatever the value, the model must have been run chunk by chunk."""
    n = MATCH_CASES[CHUNKED_CASE][0]
    batches, failed = _part(data["chunks"], ctx, f"on {CHUNKED_CASE} accuracy raised")
    if failed:
        return failed
    if not batches:
        return Verdict(False, "accuracy never called the model")
    if max(batches) < n:
        return Verdict(True, details={"batches": batches})
    return Verdict(False, f"accuracy ran the model on all {n} images at once: predict in chunks "
                          f"(of 1000 images, say) so that any number of images fits in memory, "
                          f"counting the last partial chunk too", {"batches": batches})


def _wrong_accuracy(name, n, got, expected) -> str:
    if abs(got - expected * n) < 0.5:
        return (f"on {name} accuracy returned {got:g}, the number of correct predictions: "
                f"divide by the number of samples to get a fraction")
    return (f"on {name} accuracy returned {got:.4f}, expected {expected:.4f}: take the argmax "
            f"over dim=1 (the classes), compare it with y, count every chunk including the last "
            f"partial one, and divide by len(y)")


def accuracy_returns_float(data, ctx) -> Verdict:
    for mode in ("train", "eval"):
        result, failed = _part(data["mode"][mode], ctx, "on 10 samples accuracy raised")
        if failed:
            return failed
        value = result["value"]
        if not value["is_float"]:
            fix = ("call .item() on it" if "Tensor" in value["type"]
                   else "return correct / len(y)")
            return Verdict(False, f"accuracy returned {value['repr']} (type {value['type']}), "
                                  f"expected a Python float: {fix}", {"value": value})
        if not 0.0 <= value["value"] <= 1.0:
            return Verdict(False, f"accuracy returned {value['value']:g}, outside [0, 1]: return "
                                  f"the fraction of correct predictions", {"value": value})
    return Verdict(True)


def accuracy_keeps_mode(data, ctx) -> Verdict:
    train, failed = _part(data["mode"]["train"], ctx, "on 10 samples accuracy raised")
    if failed:
        return failed
    calls = train["calls"]
    if not calls:
        return Verdict(False, "accuracy never called the model")
    if any(c["training"] for c in calls):
        return Verdict(False, "the model ran in training mode: call model.eval() before "
                              "predicting (dropout and BatchNorm behave differently in training)")
    if any(c["grad"] for c in calls):
        return Verdict(False, "gradients were recorded while predicting: wrap the predictions in "
                              "`with torch.no_grad():`")
    if not train["training_after"]:
        return Verdict(False, "accuracy left a model that was training in eval mode: note "
                              "`was_training = model.training` first and end with "
                              "model.train(was_training)")
    evaluating, failed = _part(data["mode"]["eval"], ctx, "on 10 samples accuracy raised")
    if failed:
        return failed
    if evaluating["training_after"]:
        return Verdict(False, "accuracy switched a model that was in eval mode to training mode: "
                              "restore the mode it had, model.train(was_training)")
    return Verdict(True)


# ----------------------------------------------------------------------------- hidden

def min_test_accuracy(data, ctx) -> Verdict:
    """Scores come from the clean child, on images and a secret the jail never saw; what the
    jail reported ("changed", its eager outputs) can only fail the check, never pass it."""
    if "export_error" in data:
        return Verdict(False, f"your trained model could not be exported for testing "
                              f"({data['export_error']}): forward must take a batch of images "
                              f"and return the logits tensor, with no Python-side effects")
    if data.get("changed") == 0:
        return Verdict(False, "fit did not change any of your model's parameters: fit must train "
                              "the model it is given (optimizer over model.parameters(), "
                              "backward and step on every batch)", {"changed": 0})
    outcome = data["evaluation"]
    if not outcome["ok"]:
        return Verdict(False, _rejected(outcome["error"], ctx), {"error": outcome["error"]})
    disagreement = _disagreement(data.get("eager"), outcome["data"]["agree"])
    if disagreement:
        return Verdict(False, disagreement)
    return _threshold(_hidden_scores(outcome["data"], data["secret"]))


def _rejected(error: dict, ctx) -> str:
    if error.get("type") == "GraphRejected":
        return f"your trained model was not tested: {error.get('message')}"
    return ctx.failure(error, "hidden_eval")


def _disagreement(eager, exported: torch.Tensor) -> str | None:
    """The exported program must be the model fit trained: same logits on the same images."""
    claimed = eager.get("value") if isinstance(eager, dict) and eager.get("ok") else None
    if not (isinstance(claimed, torch.Tensor) and claimed.shape == exported.shape
            and claimed.dtype == torch.float32):
        return ("your model did not run on the grader's check images (a batch of training "
                "images): forward must return a (B, 10) logits tensor")
    if close(claimed, exported):
        return None
    return ("your model gives other outputs once exported than when it runs: forward must not "
            "depend on torch.compiler.is_exporting(), is_tracing() or on Python state")


def _hidden_scores(predictions: dict, secret: int) -> dict:
    scores = {}
    for name, labels in fx.hidden_labels(secret).items():
        predicted = predictions[name]
        if not isinstance(predicted, torch.Tensor) or predicted.shape != labels.shape:
            raise ValueError(f"malformed predictions for the {name} images")
        scores[name] = (predicted.long() == labels).float().mean().item()
    return scores


def _threshold(scores: dict) -> Verdict:
    test, train = scores["test"], scores["train"]
    details = {"test_accuracy": test, "train_accuracy": train,
               "threshold": fx.MIN_TEST_ACCURACY, "epochs": fx.HIDDEN_EPOCHS,
               "batch_size": fx.HIDDEN_BATCH, "test_noise": fx.TEST_NOISE}
    budget = f"{fx.HIDDEN_EPOCHS} epoch(s) of your fit, batch_size={fx.HIDDEN_BATCH}"
    if test < fx.MIN_TEST_ACCURACY:
        return Verdict(False, f"test accuracy {test:.2%} after {budget} is below "
                              f"{fx.MIN_TEST_ACCURACY:.0%}: the model is too weak (use a hidden "
                              f"layer with a non-linearity such as ReLU) or training does not "
                              f"work (see the fit checks)", details)
    if test > train + fx.TEST_OVER_TRAIN:
        return Verdict(False, f"test accuracy {test:.2%} but only {train:.2%} on training images "
                              f"the model was trained on: the model must learn from the training "
                              f"set through your fit, not recognise the test images", details)
    return Verdict(True, f"test accuracy {test:.2%} after {budget} "
                         f"(at least {fx.MIN_TEST_ACCURACY:.0%} needed)", details)
