"""What an exported CNN is made of, read from its graph in the clean child: the operations it
calls, the numbers it holds, and each convolution and pooling with its window and the side of
the maps before and after it (the shapes torch.export recorded on every node).
"""
from __future__ import annotations

import math

import torch

CONVOLUTIONS = {"aten::conv2d", "aten::convolution"}
POOLINGS = {"aten::max_pool2d", "aten::max_pool2d_with_indices", "aten::avg_pool2d"}
ADAPTIVE = {"aten::adaptive_avg_pool2d", "aten::adaptive_max_pool2d"}


def describe(module: torch.fx.GraphModule) -> dict:
    """{"ops": {schema name: count}, "numbers": parameters and buffers, "steps": [...]}."""
    ops, steps = {}, []
    for node in module.graph.nodes:
        name = _name(node)
        if name is None:
            continue
        ops[name] = ops.get(name, 0) + 1
        step = _step(node, name)
        if step is not None:
            steps.append(step)
    numbers = sum(t.numel() for t in module.state_dict().values())
    return {"ops": ops, "numbers": numbers, "steps": steps}


def _name(node) -> str | None:
    schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
    return schema.name if schema is not None else None


def _arguments(node) -> dict:
    names = [a.name for a in node.target._schema.arguments]
    return {**dict(zip(names, node.args)), **node.kwargs}


def _side(node) -> list[int] | None:
    """The (height, width) of a 4-D (or unbatched 3-D) tensor node, as torch.export saw it."""
    value = getattr(node, "meta", {}).get("val")
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) < 3:
        return None
    try:
        return [int(shape[-2]), int(shape[-1])]
    except (TypeError, ValueError):  # a symbolic side: not a fixed-size image
        return None


def _pair(value, default) -> list[int]:
    if value is None or value == []:
        return list(default)
    if isinstance(value, int):
        return [value, value]
    value = [int(v) for v in value]
    return value * 2 if len(value) == 1 else value[:2]


def _step(node, name: str) -> dict | None:
    """One convolution or pooling: its kind, window, stride, dilation, sides in and out."""
    if name not in CONVOLUTIONS | POOLINGS | ADAPTIVE:
        return None
    args = _arguments(node)
    before, after = _side(node.args[0]), _side(node)  # the maps it is given, and returns
    if before is None or after is None:
        return None
    if name in CONVOLUTIONS:
        kernel = _side(args["weight"]) or [1, 1]
        stride, dilation = _pair(args.get("stride"), (1, 1)), _pair(args.get("dilation"), (1, 1))
        kind = "convolution"
    elif name in POOLINGS:
        kernel = _pair(args.get("kernel_size"), (1, 1))
        stride = _pair(args.get("stride"), kernel)
        dilation, kind = _pair(args.get("dilation"), (1, 1)), "pooling"
    else:  # adaptive: the window that takes the maps from `before` to `after`
        kernel = [math.ceil(b / max(a, 1)) for a, b in zip(after, before)]
        stride = [max(b // max(a, 1), 1) for a, b in zip(after, before)]
        dilation, kind = [1, 1], "pooling"
    return {"op": name, "kind": kind, "kernel": kernel, "stride": stride,
            "dilation": dilation, "before": before, "after": after}
