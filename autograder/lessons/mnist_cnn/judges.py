"""Judges for lesson 02: plain data from a probe -> Verdict. They run in the grader's process;
nothing here touches the student's code. The grader knows conv_output_size's answers; what it
says about MyCNN comes from the exported programs, run and read in the clean child. Gap 1's
judges (the convolution by hand) are in by_hand.py.
"""
from __future__ import annotations

import importlib
import math
from functools import partial

from autograder.engine.checks import Verdict
from autograder.lessons.common import hidden, model_judges
from autograder.lessons.common.judging import close, each_case, value_of
from autograder.lessons.mnist_cnn import graph
from autograder.lessons.mnist_cnn.probes import (BATCH_SHAPES, FIXED_BATCH, HIDDEN, LAYOUT_SHAPES,
                                                 LESSON, MODEL, grader_conv_output_size,
                                                 size_cases)

# ----------------------------------------------------------------------------- gap 2: size

expected = grader_conv_output_size

# Formulas students write instead, and what each does wrong (tried in this order: the first
# that gives every value the student returned names the mistake)
MISTAKES = (
    (lambda n, k, s, p: (n - k) // s + 1,
     "padding adds `padding` zeros on each border: start from size + 2 * padding"),
    (lambda n, k, s, p: (n + p - k) // s + 1,
     "padding is added on both borders: size + 2 * padding, not size + padding"),
    (lambda n, k, s, p: (n - 2 * p - k) // s + 1,
     "padding adds zeros, so it makes the side longer: + 2 * padding, not - 2 * padding"),
    (lambda n, k, s, p: n + 2 * p - k + 1,
     "the window moves `stride` pixels at a time: divide by stride (with //) before adding 1"),
    (lambda n, k, s, p: (n + 2 * p - k) // s,
     "the window's first position counts too: add 1 after the division"),
    (lambda n, k, s, p: (n + 2 * p - k + 1) // s,
     "add 1 after the division, not before it: the first position counts once, whatever the "
     "stride, and // counts the steps after it"),
    (lambda n, k, s, p: (n + 2 * p - k + 1) // s + 1,
     "one position too many: the last window must fit entirely, so count the steps of `stride` "
     "in size + 2 * padding - kernel_size, then add 1 for the first position"),
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1,
     "a window that does not fit entirely is not counted: use // (integer division), not /"),
    (lambda n, k, s, p: round((n + 2 * p - k) / s) + 1,
     "round() counts a window that only half fits: a window that does not fit entirely is not "
     "counted — use // (integer division), which rounds down"),
    (lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1,
     "math.ceil counts a window that does not fit entirely: round down, with // (integer "
     "division)"),
)
# When no known mistake explains the values: how to count, with an example to check by hand
COUNT = ("count the window's positions: the first starts at 0, each next one `stride` pixels "
         "further, and the last must fit entirely within size + 2 * padding pixels — e.g. "
         "conv_output_size(7, 3, stride=2) is 3 (windows at 0, 2 and 4)")


def _call(case) -> str:
    size, kernel, stride, padding = case
    return f"conv_output_size({size}, {kernel}, stride={stride}, padding={padding})"


def _returned(data, ctx) -> tuple[list | None, Verdict | None]:
    """[(case, what came back)] for every case, or the verdict on the first that raised."""
    return each_case(size_cases(data["secret"]), data.get("values"), ctx, _call)


def conv_output_size_values(data, ctx) -> Verdict:
    returned, failed = _returned(data, ctx)
    if failed:
        return failed
    for case, value in returned:
        if value["value"] is None:
            return Verdict(False, f"{_call(case)} returned {value['repr']}, not a number: "
                                  f"return the side of the output as an int — {COUNT}")
    wrong = [(case, value["value"]) for case, value in returned
             if value["value"] != expected(*case)]
    details = {"cases": len(returned), "wrong": len(wrong)}
    if wrong:
        (case, got), why = wrong[0], _mistake(returned)
        return Verdict(False, f"{_call(case)} returned {got:g}, expected {expected(*case)} "
                              f"({len(wrong)} of {len(returned)} cases wrong): {why}", details)
    default, failed = value_of(data["defaults"], ctx, "conv_output_size(28, 5) raised")
    if failed:
        return failed
    if default["value"] != expected(28, 5, 1, 0):
        return Verdict(False, f"conv_output_size(28, 5) returned {default['repr']}, expected "
                              f"24: keep the defaults stride=1 and padding=0", details)
    return Verdict(True, f"right on all {len(returned)} cases (sizes, kernels, strides and "
                         f"paddings drawn by the grader)", details)


def _mistake(returned) -> str:
    """What the student's formula forgets, when one known mistake explains every value."""
    for formula, why in MISTAKES:
        if all(math.isclose(formula(*case), value["value"]) for case, value in returned):
            return why
    return COUNT


def conv_output_size_int(data, ctx) -> Verdict:
    returned, failed = _returned(data, ctx)
    if failed:
        return failed
    for case, value in returned:
        if not value["is_int"]:
            return Verdict(False, f"{_call(case)} returned {value['repr']} (a {value['type']}), "
                                  f"not an int: {_int_fix(value['type'])}")
    return Verdict(True)


def _int_fix(kind: str) -> str:
    if kind == "float":
        return ("use // (integer division), not / or math.floor of a division: layer sizes "
                "are ints, and nn.Linear(32 * 4.0 * 4.0, 128) fails")
    if kind.startswith("numpy."):
        return ("numpy's floor and division return numpy numbers: compute with Python ints "
                "and //")
    if "Tensor" in kind:
        return "compute with Python numbers, not tensors"
    return "return a Python int"


# ----------------------------------------------------------------------------- gap 3: MyCNN

def output_shape(data, ctx) -> Verdict:
    """(B, 10) for both layouts; a batch size fixed in forward is any_batch_size's business.
    Its message also says how MyCNN changes with the student's own conv_output_size."""
    verdict = _output_shape(data, ctx)
    note = _own_sizes(data, ctx)
    if note:
        text = verdict.message or ("(B, 10) logits for (B, 1, 28, 28) and (B, 28, 28) inputs"
                                   if verdict.passed else "")
        verdict.message = f"{text} — {note}"
        verdict.details["own_sizes"] = note
    return verdict


def _output_shape(data, ctx) -> Verdict:
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    return (model_judges.export_failure(data, MODEL, skip=(FIXED_BATCH,))
            or model_judges.shape_failure(found, ctx, MODEL, LAYOUT_SHAPES, data)
            or Verdict(True, details={"inputs": list(LAYOUT_SHAPES)}))


def _own_sizes(data, ctx) -> str | None:
    """Gap 2's share in MyCNN: the model checks built it with the grader's conv_output_size."""
    part = data.get("own_sizes")
    if not isinstance(part, dict):
        return None
    if part.get("ok"):
        what = part.get("value")
        if not isinstance(what, str):
            return None
        what = f"with your conv_output_size (gap 2), MyCNN's {what[:300]}"
    elif part["error"]["type"] == "NotImplementedError":
        what = "gap 2 is not filled yet"
    else:
        what = f"with your conv_output_size (gap 2), MyCNN() raises {ctx.error_text(part['error'])}"
    return (f"{what}. These checks built MyCNN with the grader's conv_output_size; fix gap 2 so "
            f"that your notebook's MyCNN is the one checked here")


def any_batch_size(data, ctx) -> Verdict:
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    for label, why in (data.get("export_errors") or {}).items():
        if why == FIXED_BATCH:
            return Verdict(False, f"for {label} inputs, {FIXED_BATCH}")
    return (model_judges.shape_failure(found, ctx, MODEL, BATCH_SHAPES, data)
            or Verdict(True, "the same model serves batches of 1, 7 and 64 images",
                       {"inputs": list(BATCH_SHAPES)}))


def _graph(data, ctx) -> tuple[dict | None, Verdict | None]:
    """What the clean child read from the exported graph, once the model checks' evidence holds."""
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return None, failed
    return value_of(found["graph"], ctx, "reading your model's graph raised")


def uses_convolutions(data, ctx) -> Verdict:
    """At least one convolution whose kernel spans neighbouring pixels: a 1 × 1 one only scales
    each pixel, and a network behind it is a fully connected one."""
    seen, failed = _graph(data, ctx)
    if failed:
        return failed
    convolutions = [s for s in seen["steps"] if s["kind"] == "convolution"]
    spatial = graph.spatial(convolutions)
    details = {"convolutions": len(convolutions), "spatial": len(spatial)}
    if spatial:
        kernels = ", ".join(f"{s['kernel'][0]} × {s['kernel'][1]}" for s in spatial)
        return Verdict(True, f"{len(spatial)} convolution{'s' if len(spatial) > 1 else ''} "
                             f"(kernels {kernels})", details)
    if convolutions:
        return Verdict(False, f"your {MODEL.name}'s only convolutions have 1 × 1 kernels: each "
                              f"looks at one pixel, never at its neighbours, so the network is "
                              f"a fully connected one — use kernels of 3 × 3 or 5 × 5 "
                              f"(nn.Conv2d(1, 16, kernel_size=5)) to find strokes", details)
    calls = ", ".join(sorted(op.split("::")[-1] for op in seen["ops"]))
    return Verdict(False, f"your {MODEL.name} runs no convolution (it calls {calls}): extract "
                          f"the features with nn.Conv2d layers, each followed by a ReLU and a "
                          f"pooling, before the linear layers", details)


def allowed_numbers() -> int:
    """This lesson's rule on parameters + buffers (the clean child takes up to MODEL's budget)."""
    return int(importlib.import_module(LESSON).LESSON.budgets["parameters"])


def parameter_budget(data, ctx) -> Verdict:
    allowed = allowed_numbers()
    why = (data.get("export_errors") or {}).get(MODEL.main)
    if isinstance(why, str) and why.startswith("the model holds"):
        return Verdict(False, f"{why}: use fewer kernels, or pool before flattening — the first "
                              f"nn.Linear on the flattened maps usually holds most of them")
    seen, failed = _graph(data, ctx)
    if failed:
        return failed
    numbers = seen["numbers"]
    details = {"numbers": numbers, "allowed": allowed}
    if numbers > allowed:
        return Verdict(False, f"the model holds {numbers:,} parameters and buffers; this lesson "
                              f"allows at most {allowed:,} — use fewer kernels, or pool before "
                              f"flattening: the first nn.Linear on the flattened maps usually "
                              f"holds most of them", details)
    return Verdict(True, f"{numbers:,} parameters and buffers (this lesson allows {allowed:,})",
                   details)


# A value must have seen this much of the 28-pixel side before a pooling leaves 2 × 2 or less
MIN_FIELD = 14


def pooling_keeps_the_digit(data, ctx) -> Verdict:
    """Follows the receptive field through the convolutions and poolings, in graph order."""
    seen, failed = _graph(data, ctx)
    if failed:
        return failed
    field, jump = 1, 1
    for step in seen["steps"]:
        kernel, stride = max(step["kernel"]), max(step["stride"])
        if (step["kind"] == "pooling" and max(step["after"]) <= 2 < max(step["before"])
                and field < MIN_FIELD):
            before, after = step["before"], step["after"]
            return Verdict(False, f"a {kernel} × {kernel} pooling shrinks the {before[0]} × "
                                  f"{before[1]} maps to {after[0]} × {after[1]} while each of "
                                  f"their values has seen only {field} × {field} pixels of the "
                                  f"digit: its shape is lost — pool by 2 (nn.MaxPool2d(2)) after "
                                  f"each convolution, so that the last maps keep a few pixels "
                                  f"per side", {"field": field, "step": step})
        field += (kernel - 1) * max(step["dilation"]) * jump
        jump *= stride
    return Verdict(True, details={"steps": len(seen["steps"]), "field": field})


AFFINE = graph.AFFINE
ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}


def non_linear(data, ctx) -> Verdict:
    """Not affine as a whole, and something bends the maps between two convolutions and between
    the convolutions and the linear layers (else they collapse into fewer layers)."""
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    outputs, failed = value_of(found["affine"], ctx, "on the grader's images your model raised")
    if failed:
        return failed
    a, b, mid = outputs["a"], outputs["b"], outputs["mid"]
    scale = max(float(t.abs().max()) for t in (a, b, mid)) or 1.0
    details = {"deviation": float((mid - (a + b) / 2).abs().max()) / scale}
    if close(a, b, rel=1e-6):
        return Verdict(False, model_judges.same_output(found, MODEL), details)
    if close(mid, (a + b) / 2, rel=AFFINE):
        return Verdict(False, f"your {MODEL.name} is affine: its output for the average of two "
                              f"images is the average of their outputs, so its layers collapse "
                              f"into one linear layer — add a ReLU after each convolution and "
                              f"after each hidden linear layer", details)
    bends, failed = value_of(found["bends"], ctx, "on the grader's images your model raised")
    if failed:
        return failed
    straight = _straight(bends)
    if straight:
        return Verdict(False, straight, {**details, "bends": bends})
    return Verdict(True, details=details)


def _straight(bends: list) -> str | None:
    """The first layer whose input is still affine in the image although a convolution ran
    before it: nothing non-linear between the two."""
    convolutions = 0
    for layer in bends:
        # a layer on the image itself (the first convolution, or one beside it) may be affine
        affine = layer["deviation"] <= AFFINE and not layer.get("image")
        if layer["kind"] == "convolution":
            convolutions += 1
            if convolutions > 1 and affine:
                n = convolutions
                return (f"nothing bends the maps between your {ORDINAL.get(n - 1, n - 1)} and "
                        f"{ORDINAL.get(n, n)} convolutions (an average pooling is linear, as a "
                        f"convolution is), so the two collapse into one convolution: add a ReLU "
                        f"after each convolution, or after its pooling")
        elif convolutions:
            if affine:
                return ("nothing bends the maps between your convolutions and the first linear "
                        "layer (an average pooling and a flatten are linear), so they collapse "
                        "into one linear layer on the pixels: add a ReLU after each convolution, "
                        "or after its pooling")
            return None
    return None


# The model checks every lesson shares, and the hidden check, bound to MyCNN
batch_independence = partial(model_judges.batch_independence, spec=MODEL)
logits_not_probabilities = partial(model_judges.logits_not_probabilities, spec=MODEL)
output_depends_on_the_image = partial(model_judges.output_depends_on_the_image, spec=MODEL)
gradients_reach_all_parameters = partial(model_judges.gradients_reach_all_parameters, spec=MODEL)
initial_loss = partial(model_judges.initial_loss, spec=MODEL)
finite_outputs = partial(model_judges.finite_outputs, spec=MODEL)
min_test_accuracy = partial(hidden.min_test_accuracy, spec=HIDDEN)
