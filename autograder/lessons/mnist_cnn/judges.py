"""Judges for lesson 02: plain data from a probe -> Verdict. They run in the grader's process;
nothing here touches the student's code. The grader knows conv_output_size's answers; what it
says about MyCNN comes from the exported programs, run and read in the clean child."""
from __future__ import annotations

import math
from functools import partial

from autograder.engine.checks import Verdict
from autograder.lessons.common import hidden, model_judges
from autograder.lessons.common.judging import close, value_of
from autograder.lessons.mnist_cnn.graph import CONVOLUTIONS
from autograder.lessons.mnist_cnn.probes import (BATCH_SHAPES, FIXED_BATCH, HIDDEN,
                                                 LAYOUT_SHAPES, MODEL, size_cases)

# ----------------------------------------------------------------------------- gap 1: size


def expected(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


# Formulas students write instead, and what each forgets (tried in this order)
MISTAKES = (
    (lambda n, k, s, p: (n - k) // s + 1,
     "padding adds `padding` zeros on each border: start from size + 2 * padding"),
    (lambda n, k, s, p: (n + p - k) // s + 1,
     "padding is added on both borders: size + 2 * padding, not size + padding"),
    (lambda n, k, s, p: n + 2 * p - k + 1,
     "the window moves `stride` pixels at a time: divide by stride (with //) before adding 1"),
    (lambda n, k, s, p: (n + 2 * p - k) // s,
     "the window's first position counts too: add 1 after the division"),
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1,
     "a window that does not fit entirely is not counted: use // (integer division), not /"),
)
FORMULA = "the side is (size + 2 * padding - kernel_size) // stride + 1"


def _call(case) -> str:
    size, kernel, stride, padding = case
    return f"conv_output_size({size}, {kernel}, stride={stride}, padding={padding})"


def _returned(data, ctx) -> tuple[list | None, Verdict | None]:
    """[(case, what came back)] for every case, or the verdict on the first that raised."""
    cases = size_cases(data["secret"])  # drawn by the grader for this grading
    if not isinstance(data.get("values"), list) or len(data["values"]) != len(cases):
        raise ValueError("malformed conv_output_size results")
    returned = []
    for case, part in zip(cases, data["values"]):
        value, failed = value_of(part, ctx, f"{_call(case)} raised")
        if failed:
            return None, failed
        returned.append((case, value))
    return returned, None


def conv_output_size_values(data, ctx) -> Verdict:
    returned, failed = _returned(data, ctx)
    if failed:
        return failed
    for case, value in returned:
        if value["value"] is None:
            return Verdict(False, f"{_call(case)} returned {value['repr']}, not a number: "
                                  f"return the side of the output, {FORMULA}")
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
    return FORMULA


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
        return ("use // (integer division), not /: layer sizes are ints, and "
                "nn.Linear(32 * 4.0 * 4.0, 128) fails")
    if "Tensor" in kind:
        return "compute with Python numbers, not tensors"
    return "return a Python int"


# ----------------------------------------------------------------------------- gap 2: MyCNN

def output_shape(data, ctx) -> Verdict:
    """(B, 10) for both layouts; a batch size fixed in forward is any_batch_size's business."""
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    return (model_judges.export_failure(data, MODEL, skip=(FIXED_BATCH,))
            or model_judges.shape_failure(found, ctx, MODEL, LAYOUT_SHAPES)
            or Verdict(True, details={"inputs": list(LAYOUT_SHAPES)}))


def any_batch_size(data, ctx) -> Verdict:
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    for label, why in (data.get("export_errors") or {}).items():
        if why == FIXED_BATCH:
            return Verdict(False, f"for {label} inputs, {FIXED_BATCH}")
    return (model_judges.shape_failure(found, ctx, MODEL, BATCH_SHAPES)
            or Verdict(True, details={"inputs": list(BATCH_SHAPES)}))


def _graph(data, ctx) -> tuple[dict | None, Verdict | None]:
    """What the clean child read from the exported graph, once the model checks' evidence holds."""
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return None, failed
    return value_of(found["graph"], ctx, "reading your exported model's graph raised")


def uses_convolutions(data, ctx) -> Verdict:
    graph, failed = _graph(data, ctx)
    if failed:
        return failed
    count = sum(n for op, n in graph["ops"].items() if op in CONVOLUTIONS)
    details = {"convolutions": count}
    if count:
        return Verdict(True, f"{count} convolution{'s' if count > 1 else ''} in the exported "
                             f"graph", details)
    calls = ", ".join(sorted(op.split("::")[-1] for op in graph["ops"]))
    return Verdict(False, f"your exported {MODEL.name} runs no convolution (it calls {calls}): "
                          f"extract the features with nn.Conv2d layers, each followed by a ReLU "
                          f"and a pooling, before the linear layers", details)


def parameter_budget(data, ctx) -> Verdict:
    budget = MODEL.max_numbers()
    why = (data.get("export_errors") or {}).get(MODEL.main)
    if isinstance(why, str) and why.startswith("the model holds"):
        return Verdict(False, f"{why}: use fewer kernels, or pool before flattening — the first "
                              f"nn.Linear on the flattened maps usually holds most of them")
    graph, failed = _graph(data, ctx)
    if failed:
        return failed
    numbers = graph["numbers"]
    if numbers > budget:  # the clean child refuses such a program: never reached honestly
        return Verdict(False, f"the model holds {numbers:,} numbers; this lesson allows at most "
                              f"{budget:,}")
    return Verdict(True, f"{numbers:,} parameters and buffers (this lesson allows {budget:,})",
                   {"numbers": numbers, "budget": budget})


# A value must have seen this much of the 28-pixel side before a pooling leaves 2 × 2 or less
MIN_FIELD = 14


def pooling_keeps_the_digit(data, ctx) -> Verdict:
    """Follows the receptive field through the convolutions and poolings, in graph order."""
    graph, failed = _graph(data, ctx)
    if failed:
        return failed
    field, jump = 1, 1
    for step in graph["steps"]:
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
    return Verdict(True, details={"steps": len(graph["steps"]), "field": field})


AFFINE = 1e-4  # relative to the outputs' scale: an affine CNN deviates by ~1e-6, a ReLU one by ~0.1


def non_linear(data, ctx) -> Verdict:
    found, failed = model_judges.evidence(data, ctx, MODEL)
    if failed:
        return failed
    outputs, failed = value_of(found["affine"], ctx, "on the grader's images your model raised")
    if failed:
        return failed
    a, b, mid = outputs["a"], outputs["b"], outputs["mid"]
    scale = max(float(t.abs().max()) for t in (a, b, mid)) or 1.0
    details = {"deviation": float((mid - (a + b) / 2).abs().max()) / scale}
    if close(mid, (a + b) / 2, rel=AFFINE):
        return Verdict(False, f"your {MODEL.name} is affine: its output for the average of two "
                              f"images is the average of their outputs, so its layers collapse "
                              f"into one linear layer — add a ReLU after each convolution and "
                              f"after each hidden linear layer", details)
    return Verdict(True, details=details)


# The model checks every lesson shares, and the hidden check, bound to MyCNN
batch_independence = partial(model_judges.batch_independence, spec=MODEL)
logits_not_probabilities = partial(model_judges.logits_not_probabilities, spec=MODEL)
gradients_reach_all_parameters = partial(model_judges.gradients_reach_all_parameters, spec=MODEL)
initial_loss = partial(model_judges.initial_loss, spec=MODEL)
finite_outputs = partial(model_judges.finite_outputs, spec=MODEL)
min_test_accuracy = partial(hidden.min_test_accuracy, spec=HIDDEN)
