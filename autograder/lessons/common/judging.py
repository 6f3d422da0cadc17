"""What every lesson's judges share: a probe part's value or the verdict that explains its
error, a comparison relative to the scale of what it compares, and the agreement between what
the jail says its model returned and what the exported program returns in the clean child.
They run in the grader's process; nothing here touches the student's code."""
from __future__ import annotations

import torch

from autograder.engine.checks import Verdict

# errors whose explanation needs no "while doing X" in front
SELF_EXPLAINING = ("NotImplementedError", "MissingName", "SystemExit")


def value_of(part: dict, ctx, doing: str):
    """(the value of a probe part, None), or (None, a failing Verdict that explains its error)."""
    if part["ok"]:
        return part["value"], None
    error = part["error"]
    text = ctx.error_text(error)
    return None, Verdict(False, text if error["type"] in SELF_EXPLAINING else f"{doing}: {text}")


def each_case(cases: list, parts, ctx, call) -> tuple[list | None, Verdict | None]:
    """[(case, the value the probe's part for it returned)], or (None, the verdict on the first
    case that raised); `call(case)` names the call in that verdict."""
    if not isinstance(parts, list) or len(parts) != len(cases):
        raise ValueError("malformed results: not one per case")
    returned = []
    for case, part in zip(cases, parts):
        value, failed = value_of(part, ctx, f"{call(case)} raised")
        if failed:
            return None, failed
        returned.append((case, value))
    return returned, None


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    """Equal up to float rounding, relative to the scale of what is compared (NaN == NaN)."""
    if a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return False
    a, b = a.double().nan_to_num(0.0), b.double().nan_to_num(0.0)
    if a.numel() == 0:
        return True
    scale = max(float(a.abs().max()), float(b.abs().max()))
    return float((a - b).abs().max()) <= rel * scale


def disagreement(eager, exported: torch.Tensor) -> str | None:
    """The exported program must be the model the jail ran: same logits on the same images."""
    claimed = eager.get("value") if isinstance(eager, dict) and eager.get("ok") else None
    if not (isinstance(claimed, torch.Tensor) and claimed.shape == exported.shape
            and claimed.dtype == torch.float32):
        return ("your model did not run on the grader's check images (a batch of training "
                "images): forward must return a (B, 10) logits tensor")
    if close(claimed, exported):
        return None
    return ("your model gives other outputs when traced (followed as PyTorch operations) than "
            "when it runs: forward must not depend on torch.compiler.is_exporting(), "
            "is_tracing() or on Python state")


def percent(fraction: float) -> str:
    """0.94 -> "94%", 0.975 -> "97.5%": a threshold as people write it."""
    return f"{fraction * 100:g}%"
