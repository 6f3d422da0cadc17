"""What an exported CNN does to an image, watched in the clean child while the program runs on a
batch: the operators it calls, the numbers it holds, and each convolution and pooling with its
window and the sides of the maps before and after it.

It watches ATen operators as they run (a TorchDispatchMode), so it needs nothing from the
program's encoding: whatever runs the graph, a convolution is aten::convolution, a max-pooling
aten::max_pool2d_with_indices, and the tensors are real ones of known shape.
"""
from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

CONVOLUTIONS = {"aten::convolution", "aten::conv2d"}
POOLINGS = {"aten::max_pool2d", "aten::max_pool2d_with_indices", "aten::avg_pool2d"}
ADAPTIVE = {"aten::adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d",
            "aten::adaptive_max_pool2d"}
REDUCTIONS = {"aten::mean", "aten::amax", "aten::sum"}  # over both sides: a global pooling


class Watch(TorchDispatchMode):
    """Every ATen operator that runs inside, by name, with its spatial step if it has one."""

    def __init__(self):
        super().__init__()
        self.ops, self.steps = {}, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._schema.name
        self.ops[name] = self.ops.get(name, 0) + 1
        step = _step(name, func._schema, args, kwargs or {}, out)
        if step is not None:
            self.steps.append(step)
        return out


def describe(module, images: torch.Tensor) -> dict:
    """{"ops": {name: count}, "numbers": parameters and buffers, "steps": [...]}."""
    watch = Watch()
    with torch.no_grad(), watch:
        module(images)
    numbers = sum(t.numel() for t in list(module.parameters()) + list(module.buffers()))
    return {"ops": watch.ops, "numbers": numbers, "steps": watch.steps}


def _side(value) -> list[int] | None:
    """The (height, width) of an image-like tensor (at least 3 dimensions)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    if not isinstance(value, torch.Tensor) or value.dim() < 3:
        return None
    return [int(value.shape[-2]), int(value.shape[-1])]


def _pair(value, default) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return list(default)
    if isinstance(value, int):
        return [value, value]
    value = [int(v) for v in value]
    return value * 2 if len(value) == 1 else value[:2]


def _step(name: str, schema, args, kwargs, out) -> dict | None:
    """One convolution or pooling: its kind, window, stride, dilation, sides in and out."""
    given = {**dict(zip([a.name for a in schema.arguments], args)), **kwargs}
    if name in REDUCTIONS:
        return _global(name, args[0] if args else None, given.get("dim"))
    if name not in CONVOLUTIONS | POOLINGS | ADAPTIVE:
        return None
    before, after = _side(args[0] if args else None), _side(out)
    if before is None or after is None:
        return None
    if name in CONVOLUTIONS:
        kernel = _side(given.get("weight")) or [1, 1]
        stride = _pair(given.get("stride"), (1, 1))
        dilation, kind = _pair(given.get("dilation"), (1, 1)), "convolution"
    elif name in POOLINGS:
        kernel = _pair(given.get("kernel_size"), (1, 1))
        stride = _pair(given.get("stride"), kernel)
        dilation, kind = _pair(given.get("dilation"), (1, 1)), "pooling"
    else:  # adaptive: the window that takes the maps from `before` to `after`
        kernel = [math.ceil(b / max(a, 1)) for a, b in zip(after, before)]
        stride = [max(b // max(a, 1), 1) for a, b in zip(after, before)]
        dilation, kind = [1, 1], "pooling"
    return {"op": name, "kind": kind, "kernel": kernel, "stride": stride,
            "dilation": dilation, "before": before, "after": after}


def _global(name: str, maps, dims) -> dict | None:
    """x.mean(dim=(2, 3)) and the like, on (B, C, H, W) maps: a pooling to 1 × 1."""
    if not (isinstance(maps, torch.Tensor) and maps.dim() == 4 and isinstance(dims, (list, tuple))
            and {int(d) % 4 for d in dims} == {2, 3}):
        return None
    side = [int(maps.shape[-2]), int(maps.shape[-1])]
    return {"op": name, "kind": "pooling", "kernel": side, "stride": side, "dilation": [1, 1],
            "before": side, "after": [1, 1]}
