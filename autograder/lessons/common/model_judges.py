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
from autograder.lessons.common import graphs
from autograder.lessons.common.judging import close, disagreement, value_of
from autograder.lessons.common.model import ModelSpec


def evidence(data, ctx, spec: ModelSpec) -> tuple[dict | None, Verdict | None]:
    """The clean child's evidence, once the exported program agrees with the jail's model."""
    eager = data["eager"]
    _, failed = value_of(eager, ctx, f"on a batch of {fx.MODEL_BATCH} images your model raised")
    if failed:
        return None, Verdict(False, hinted(failed.message, spec.eager_hints, spec, data))
    outcome = data["evaluation"]
    if not outcome["ok"]:
        error, why = outcome["error"], (data.get("export_errors") or {}).get(spec.main)
        if error.get("type") == "GraphRejected" and isinstance(why, str):
            return None, Verdict(False, hinted(f"{graphs.UNTRACED}: {why}", spec.export_hints, spec,
                                               data))
        if error.get("type") == "GraphRejected":
            return None, Verdict(False, f"your model was not checked: {error.get('message')}")
        return None, Verdict(False, ctx.failure(error, "model_eval"), {"error": error})
    found = outcome["data"]
    agree, failed = value_of(found["agree"], ctx, "your traced model raised")
    if failed:
        return None, failed
    differs = disagreement(eager, agree)
    if differs:
        return None, Verdict(False, differs)
    return found, None


# Causes every lesson's model can have: (phrase of an error, the fix)
COMMON_HINTS = (
    ("torch.nn.Parameter()", "forward creates a layer (such as nn.Conv2d(...) or nn.Linear(...)) "
                             "each time it runs, with new random weights that training never "
                             "reaches: create every layer once in __init__, as an attribute "
                             "(self.conv1 = nn.Conv2d(...)), and only call it in forward"),)


def hinted(message: str, hints, spec: ModelSpec | None = None, data=None) -> str:
    """The message, with the lesson's diagnosis of it (spec.diagnose, from the error's numbers
    and the probe's data), else the fix of the first hint whose phrase it contains."""
    hint = spec.diagnose(message, data or {}) if spec is not None and spec.diagnose else None
    hint = hint or next((fix for phrase, fix in (*hints, *COMMON_HINTS) if phrase in message), "")
    return f"{message}{' — ' + hint if hint else ''}"


def output_shape(data, ctx, spec: ModelSpec) -> Verdict:
    found, failed = evidence(data, ctx, spec)
    if failed:
        return failed
    return (export_failure(data, spec) or shape_failure(found, ctx, spec, spec.shapes, data)
            or Verdict(True, details={"inputs": list(found["shapes"])}))


def export_failure(data, spec: ModelSpec, skip=()) -> Verdict | None:
    """The first layout the jail could not export (its reasons in `skip` left to others)."""
    for label, why in (data.get("export_errors") or {}).items():
        if why not in skip:
            return Verdict(False, hinted(f"for {label} inputs {graphs.UNTRACED}: {why}",
                                         spec.export_hints, spec, data))
    return None


def shape_failure(found, ctx, spec: ModelSpec, labels, data=None) -> Verdict | None:
    """The first of these inputs for which the programs did not return (B, 10) logits."""
    for label in labels:
        n = int(label.strip("(").split(",")[0])
        shape, failed = value_of(found["shapes"][label], ctx,
                                 f"for an input of shape {label} your model raised")
        if failed:
            return Verdict(False, hinted(failed.message, spec.raise_hints, spec, data))
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


# The last operations that keep logits from taking any value: name -> what a student wrote.
# A softmax is told apart by its rows' sums (over dim=0 it is batch_independence's business).
SQUASHES = {"aten::relu": "a ReLU", "aten::relu6": "a ReLU6", "aten::sigmoid": "a sigmoid",
            "aten::hardsigmoid": "a hard sigmoid", "aten::tanh": "a tanh",
            "aten::hardtanh": "a hardtanh", "aten::softplus": "a softplus",
            "aten::abs": "an abs()", "aten::exp": "an exp()", "aten::clamp": "a clamp",
            "aten::clamp_min": "a clamp", "aten::clamp_max": "a clamp"}
SOFTMAXES = {"aten::softmax", "aten::_softmax", "aten::log_softmax", "aten::_log_softmax"}
FREE_LOGITS = ("logits must be free to take any value, negative ones included: "
               "nn.CrossEntropyLoss turns them into probabilities itself")


def _first_logits(data, ctx, spec: ModelSpec):
    """(the clean child's evidence, the program's logits on the grader's images, None), or
    (None, None, the verdict that explains why there are none)."""
    found, failed = evidence(data, ctx, spec)
    if failed:
        return None, None, failed
    logits, failed = value_of(found["init"], ctx,
                              f"on {fx.INIT_SAMPLES} images your model raised")
    return found, logits, failed


def logits_not_probabilities(data, ctx, spec: ModelSpec) -> Verdict:
    found, logits, failed = _first_logits(data, ctx, spec)
    if failed:
        return failed
    rows = logits.sum(dim=1)
    details = {"row_sums": rows[:4].tolist(), "min": float(logits.min())}
    if bool((logits >= 0).all()) and bool(((rows - 1).abs() < 1e-3).all()):
        return Verdict(False, details=details)
    last = found["last"]["value"] if found.get("last", {}).get("ok") else None
    squash = SQUASHES.get(last) if isinstance(last, str) else None
    if squash is None and last not in SOFTMAXES and bool((logits >= 0).all()) \
            and not _constant(logits):
        squash = _squash_of(logits)
    if squash:
        return Verdict(False, f"forward ends with {squash}, so its outputs are not logits — "
                              f"{FREE_LOGITS}: remove {squash} after the last layer (keep the "
                              f"non-linearities between layers)", details)
    return Verdict(True, details=details)


def _squash_of(logits: torch.Tensor) -> str:
    """What likely made every output non-negative: a ReLU zeroes many, a sigmoid stays in (0, 1)."""
    if float((logits == 0).float().mean()) >= 0.1:
        return "a ReLU"
    if bool((logits < 1).all()):
        return "a sigmoid"
    return "an operation that makes every output non-negative"


def _constant(logits: torch.Tensor) -> bool:
    """The same output row for every image (relative to the outputs' scale)."""
    return close(logits, logits[:1].expand_as(logits), rel=1e-6)


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
    constant = constant_weights(found)
    if zero and constant:
        return Verdict(False, f"the gradient of {', '.join(zero)} is exactly zero: "
                              f"{ZERO_INIT.format(names=', '.join(constant))}",
                       {"zero": zero, "constant": constant})
    if zero:
        return Verdict(False, f"the gradient of {', '.join(zero)} is exactly zero, so training "
                              f"never changes {'it' if len(zero) == 1 else 'them'}: something in "
                              f"forward multiplies by 0 or cuts these layers off (e.g. a "
                              f"`* 0`, a mask of zeros, a ReLU that is never active)",
                       {"zero": zero})
    return Verdict(True, details={"parameters": len(grads)})


ZERO_INIT = ("every value of {names} is the same (a zero or constant initialisation), so its "
             "units compute the same thing and receive the same gradient — keep PyTorch's "
             "default (random) initialisation of the layers")


def constant_weights(found) -> list[str]:
    """The weights the clean child found constant (all zeros, say), [] when it could not tell."""
    part = found.get("constant")
    names = part["value"] if isinstance(part, dict) and part.get("ok") else []
    return [n for n in names if isinstance(n, str)][:20] if isinstance(names, list) else []


def output_depends_on_the_image(data, ctx, spec: ModelSpec) -> Verdict:
    """Different images must give different outputs: a constant model keeps no digit."""
    found, logits, failed = _first_logits(data, ctx, spec)
    if failed:
        return failed
    spread = float((logits - logits[:1]).abs().max())
    details = {"spread": spread}
    if not _constant(logits):
        return Verdict(True, details=details)
    return Verdict(False, same_output(found, spec), details)


def same_output(found, spec: ModelSpec) -> str:
    """Why every image gets the same output: a constant initialisation, or forward ignores x."""
    constant = constant_weights(found)
    if constant:
        return (f"your {spec.name} gives the same output for every image: "
                f"{ZERO_INIT.format(names=', '.join(constant))}")
    return (f"your {spec.name} gives the same output for every image, so it cannot tell digits "
            f"apart: forward must compute the logits from its input x, through every layer")


def initial_loss(data, ctx, spec: ModelSpec) -> Verdict:
    _, logits, failed = _first_logits(data, ctx, spec)
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
