"""The model checks' judges, for every lesson: the probes' plain data (model.py) -> Verdict.

Each judge takes the lesson's ModelSpec; a lesson binds them once, e.g.
`partial(model_judges.output_shape, spec=MODEL)`. Evidence comes from the exported programs
run in the clean child; what the jail reported (its eager outputs, its export errors, its
parameter names) can only fail a check.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from autograder.engine.checks import Verdict
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common.judging import close, disagreement, value_of
from autograder.lessons.common.model import ModelSpec


def evidence(data, ctx, spec: ModelSpec) -> tuple[dict | None, Verdict | None]:
    """The clean child's evidence, once the exported program agrees with the jail's model."""
    eager = data["eager"]
    _, failed = value_of(eager, ctx, f"on a batch of {fx.MODEL_BATCH} images your model raised")
    if failed:
        return None, Verdict(False, hinted(failed.message, spec.eager_hints))
    outcome = data["evaluation"]
    if not outcome["ok"]:
        error, why = outcome["error"], (data.get("export_errors") or {}).get(spec.main)
        if error.get("type") == "GraphRejected" and isinstance(why, str):
            return None, Verdict(False, f"your model could not be exported for checking: {why}")
        if error.get("type") == "GraphRejected":
            return None, Verdict(False, f"your model was not checked: {error.get('message')}")
        return None, Verdict(False, ctx.failure(error, "model_eval"), {"error": error})
    found = outcome["data"]
    agree, failed = value_of(found["agree"], ctx, "the exported model raised")
    if failed:
        return None, failed
    differs = disagreement(eager, agree)
    if differs:
        return None, Verdict(False, differs)
    return found, None


def hinted(message: str, hints) -> str:
    """The message, with the fix of the first hint whose phrase it contains."""
    hint = next((fix for phrase, fix in hints if phrase in message), "")
    return f"{message}{' — ' + hint if hint else ''}"


def output_shape(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    return (export_failure(data, spec) or shape_failure(found, ctx, spec, spec.shapes)
            or Verdict(True, details={"inputs": list(found["shapes"])}))


def export_failure(data, spec: ModelSpec, skip=()) -> Verdict | None:
    """The first layout the jail could not export (its reasons in `skip` left to others)."""
    for label, why in (data.get("export_errors") or {}).items():
        if why not in skip:
            return Verdict(False, hinted(f"for {label} inputs your model could not be "
                                         f"exported: {why}", spec.export_hints))
    return None


def shape_failure(found, ctx, spec: ModelSpec, labels) -> Verdict | None:
    """The first of these inputs for which the programs did not return (B, 10) logits."""
    for label in labels:
        n = int(label.strip("(").split(",")[0])
        shape, failed = value_of(found["shapes"][label], ctx,
                                 f"for an input of shape {label} your model raised")
        if failed:
            return Verdict(False, hinted(failed.message, spec.raise_hints))
        if shape != [n, 10]:
            return Verdict(False, f"for an input of shape {label} your model returned shape "
                                  f"{tuple(shape)} instead of ({n}, 10): {spec.shape_fix}")
    return None


def batch_independence(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    pair, failed = value_of(found["pair"], ctx,
                            f"on a batch of {fx.MODEL_BATCH} images your model raised")
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


def logits_not_probabilities(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    logits, failed = value_of(found["init"], ctx,
                              f"on {fx.INIT_SAMPLES} images your model raised")
    if failed:
        return failed
    rows = logits.sum(dim=1)
    if bool((logits >= 0).all()) and bool(((rows - 1).abs() < 1e-3).all()):
        return Verdict(False, details={"row_sums": rows[:4].tolist()})
    return Verdict(True)


def gradients_reach_all_parameters(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    grads, failed = value_of(found["grads"], ctx, "computing the loss gradient raised")
    if failed:
        if "does not require grad" in failed.message:
            return Verdict(False, "no gradient reaches any parameter: the output is cut off from "
                                  "the graph (a .detach(), .data, .numpy() or torch.no_grad() "
                                  "in forward)")
        return failed
    grads = grads["grads"]
    grads.update({name: None for name in _names(data["parameters"]) if name not in grads})
    if not grads:
        return Verdict(False, f"{spec.name} has no trainable parameters: create its layers in "
                              f"__init__ as attributes ({spec.layer_example})")
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


def initial_loss(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    logits, failed = value_of(found["init"], ctx,
                              f"on {fx.INIT_SAMPLES} images your model raised")
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


def finite_outputs(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    inputs = {"init": "real images", "blank": "blank (all-zero) images",
              "white": "all-white images"}
    for key, name in inputs.items():
        out, failed = value_of(found[key], ctx, f"on {name} your model raised")
        if failed:
            return failed
        if not bool(torch.isfinite(out).all()):
            return Verdict(False, f"your model outputs NaN or inf for {name}: avoid dividing by "
                                  f"something that can be 0 or taking the log of 0 (add a small "
                                  f"epsilon)")
    grads, failed = value_of(found["grads"], ctx, "computing the loss gradient raised")
    if grads and not grads["train_finite"]:
        return Verdict(False, "your model outputs NaN or inf while computing the loss gradient")
    return Verdict(True)
