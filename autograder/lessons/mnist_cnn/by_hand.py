"""Judges of gap 1, the convolution by hand: the student's conv2d_by_hand on the cases the grader
drew for this grading (probes.conv_cases), against F.conv2d computed here on the same inputs.

The values are evidence: the grader computes them itself. Whether the function called a
convolution of PyTorch is what the jail reports (a claim, worth 1 point, and only next to right
values). A wrong result is explained by the mistakes students make (a flipped kernel, a missing
bias, one position short, ...) when one of them gives every value the student returned.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from autograder.engine.checks import Verdict
from autograder.lessons.common.judging import close, each_case
from autograder.lessons.mnist_cnn.probes import conv_cases

DEFINITION = ("output[o, r, s] = bias[o] + the sum over every input channel c and kernel "
              "position (i, j) of weight[o, c, i, j] * x[c, r + i, s + j]")


def expected(case: dict) -> torch.Tensor:
    """(C_out, H - kh + 1, W - kw + 1): one image through F.conv2d."""
    return F.conv2d(case["x"][None].double(), case["weight"].double(),
                    case["bias"].double())[0]


# Results students return instead, and what each one does wrong (tried in this order)
MISTAKES = (
    (lambda c: F.conv2d(c["x"][None], c["weight"].flip(-2, -1), c["bias"])[0],
     "you flipped the kernel, as mathematics' convolution does: deep learning's does not flip it "
     "— weight[o, c, i, j] multiplies x[c, r + i, s + j]"),
    (lambda c: F.conv2d(c["x"][None], c["weight"])[0],
     "the bias is missing: add bias[o] to every value of output map o"),
    (lambda c: F.conv2d(c["x"][None], c["weight"].transpose(-2, -1), c["bias"])[0]
     if c["weight"].shape[-1] == c["weight"].shape[-2] else None,
     "the kernel's rows and columns are swapped: its first index i runs along the height, like "
     "r — weight[o, c, i, j] multiplies x[c, r + i, s + j]"),
    (lambda c: F.conv2d(c["x"][None, :1], c["weight"][:, :1], c["bias"])[0],
     "only the first input channel counts: sum over every input channel c too"),
    (lambda c: F.conv2d(c["x"][None], c["weight"])[0] + c["bias"].sum(),
     "each output map o adds its own bias, bias[o], not the sum of all biases"),
)


def _call(case: dict) -> str:
    c_out, c_in, kh, kw = case["weight"].shape
    return (f"conv2d_by_hand(x of shape {tuple(case['x'].shape)}, weight of shape "
            f"({c_out}, {c_in}, {kh}, {kw}), bias)")


def _returned(data, ctx) -> tuple[list | None, Verdict | None]:
    """[(case, what came back)], or the verdict on the first case that raised."""
    cases = conv_cases(data["secret"])  # drawn by the grader for this grading
    return each_case(cases, data.get("outputs"), ctx, _call)


def conv_by_hand_values(data, ctx) -> Verdict:
    returned, failed = _returned(data, ctx)
    return failed or _values(returned)


def _values(returned: list) -> Verdict:
    """The verdict on what conv2d_by_hand returned for every case, against F.conv2d."""
    for case, value in returned:
        wrong = _wrong_shape(case, value) or _wrong_values(case, value, returned)
        if wrong:
            return Verdict(False, wrong, {"cases": len(returned)})
    return Verdict(True, f"the values of F.conv2d on all {len(returned)} cases (channels, "
                         f"non-square kernels, biases drawn by the grader)",
                   {"cases": len(returned)})


def _wrong_shape(case: dict, value: dict) -> str | None:
    want = list(expected(case).shape)
    if value["shape"] is None:
        return (f"{_call(case)} returned a {value['type']}, not a tensor: return a tensor of "
                f"shape {tuple(want)}")
    got = value["shape"]
    if got == want:
        return None
    c_out, h, w = want
    if got == [c_out, h - 1, w - 1]:
        why = ("one position short on each side: a window of kh rows fits H - kh + 1 times, at "
               "rows 0 to H - kh included (range(H - kh + 1))")
    elif got == [1, c_out, h, w]:
        why = "return the maps of one image, (C_out, H', W'), without a batch dimension"
    elif got == [c_out, w, h]:
        why = "rows and columns are swapped: the output is (C_out, H - kh + 1, W - kw + 1)"
    elif len(got) == 4 and got[0] == c_out and got[2:] == [h, w]:
        why = ("one map per input channel: sum the products over every input channel c too, "
               "so that each output channel has one map")
    elif got[-2:] == list(case["x"].shape[-2:]):
        why = ("the output has the input's size: without padding, a window fits only "
               "H - kh + 1 times along the height and W - kw + 1 along the width")
    else:
        why = "the output has one map per output channel, each (H - kh + 1) × (W - kw + 1)"
    return f"{_call(case)} returned shape {tuple(got)}, expected {tuple(want)}: {why}"


def _wrong_values(case: dict, value: dict, returned: list) -> str | None:
    want = expected(case)
    got = value["tensor"]
    if got is None or close(got, want, rel=1e-5):
        return None
    gap = (got - want).abs().nan_to_num(float("inf"))
    at = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    return (f"{_call(case)}: output{list(at)} is {float(got[at]):g}, expected "
            f"{float(want[at]):g} — {_mistake(returned)}")


def _mistake(returned: list) -> str:
    """What the student's function does wrong, when one known mistake gives all its values."""
    for result, why in MISTAKES:
        if all(_gives(result, case, value) for case, value in returned):
            return why
    return f"compute {DEFINITION}"


def _gives(result, case: dict, value: dict) -> bool:
    other = result({k: t.double() for k, t in case.items()})
    return (other is not None and value["tensor"] is not None
            and list(other.shape) == value["shape"] and close(value["tensor"], other, rel=1e-5))


def conv_by_hand_own_work(data, ctx) -> Verdict:
    """No convolution of PyTorch ran inside conv2d_by_hand (what the jail reports), and its
    values are right: a function that returns nothing useful does not earn this point."""
    library = data.get("library")
    if not isinstance(library, list):
        raise ValueError("malformed conv2d_by_hand report")
    if library:
        return Verdict(False, f"conv2d_by_hand calls PyTorch's own convolution "
                              f"({', '.join(str(n) for n in library[:3])}): compute each output "
                              f"value from the window under the kernel yourself — loops over "
                              f"the positions, or x.unfold", {"library": library[:10]})
    returned, failed = _returned(data, ctx)
    if failed:  # not filled yet, or it raised: the same words as conv_by_hand_values
        return failed
    if not _values(returned).passed:
        return Verdict(False, "conv2d_by_hand uses no convolution of PyTorch, but its values "
                              "are wrong (see conv_by_hand_values): this point needs the right "
                              "values, computed by hand")
    return Verdict(True)
