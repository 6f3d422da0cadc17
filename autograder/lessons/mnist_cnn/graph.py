"""What an exported CNN does to an image, watched in the clean child while the program runs on a
batch: the operators it calls, the numbers it holds, each convolution and pooling with its
window and the sides of the maps before and after it, and how far the input of each layer is
from an affine function of the image.

It watches ATen operators as they run (a TorchDispatchMode), so it needs nothing from the
program's encoding: whatever runs the graph, a convolution is aten::convolution, a max-pooling
aten::max_pool2d_with_indices, and the tensors are real ones of known shape. `trace` watches the
student's own model the same way in the jail, when it raises, for the hint only.
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
# nn.Linear as it reaches the dispatcher: (B, in) @ (in, out), the input first but for addmm's
AFFINE = 1e-4  # relative to the outputs' scale: an affine CNN deviates by ~1e-6, a ReLU one by ~0.1
LINEAR = {"aten::linear": 0, "aten::addmm": 1, "aten::mm": 0, "aten::matmul": 0, "aten::bmm": 0}
MAX_TRACE = 40


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


def spatial(steps: list) -> list[dict]:
    """The convolutions whose kernel spans neighbouring pixels: a 1 × 1 one only weighs each
    pixel on its own, and a network behind it is a fully connected one."""
    return [s for s in steps if s["kind"] == "convolution" and max(s["kernel"]) > 1]


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


class Inputs(TorchDispatchMode):
    """The input of every linear layer and convolution (but 1 × 1 ones, which see no
    neighbourhood: uses_convolutions' business), in the order they run."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in CONVOLUTIONS and max(args[1].shape[2:], default=1) > 1:
            self.seen.append(("convolution", args[0].detach().clone()))
        elif name in LINEAR:
            self.seen.append(("linear", args[LINEAR[name]].detach().clone()))
        return func(*args, **(kwargs or {}))


def bends(module, a: torch.Tensor, b: torch.Tensor) -> list[dict]:
    """For each convolution and linear layer, in order: how far its input is from an affine
    function of the image — for images a, b and their midpoint, |in(mid) - (in(a) + in(b)) / 2|
    relative to the inputs' scale (~1e-7 when nothing between the image and the layer bends)."""
    runs = []
    for x in (a, b, (a + b) / 2):
        watch = Inputs()
        with torch.no_grad(), watch:
            module(x)
        runs.append(watch.seen)
    found = []
    for (kind, at_a), (_, at_b), (_, at_mid) in zip(*runs):
        scale = max(float(t.abs().max()) for t in (at_a, at_b, at_mid)) or 1.0
        image = at_a.numel() == a.numel() and torch.equal(at_a.reshape(-1), a.reshape(-1))
        found.append({"kind": kind, "image": image,  # a layer may take the image itself
                      "deviation": float((at_mid - (at_a + at_b) / 2).abs().max()) / scale})
    return found


class Trace(TorchDispatchMode):
    """The shapes each convolution, pooling and linear layer met, recorded before it runs, so that
    the one that raised is the last: in the jail, for a hint only (what the jail says can only
    explain a failed check)."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        step = _traced(name, func._schema, args, kwargs or {})
        if step is not None and len(self.steps) < MAX_TRACE:
            step["output"] = None  # until the operation returns
            self.steps.append(step)
        out = func(*args, **(kwargs or {}))
        if step is not None:
            step["output"] = _shape(out)
        return out


def trace(model, x: torch.Tensor) -> list[dict]:
    """The layers a forward pass met until it finished or raised."""
    watch = Trace()
    try:
        with torch.no_grad(), watch:
            model(x)
    except Exception:
        pass
    return watch.steps


def _shape(value) -> list[int] | None:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return [int(n) for n in value.shape] if isinstance(value, torch.Tensor) else None


def _traced(name: str, schema, args, kwargs) -> dict | None:
    given = {**dict(zip([a.name for a in schema.arguments], args)), **kwargs}
    if name in CONVOLUTIONS:
        return {"kind": "convolution", "input": _shape(args[0]), "weight": _shape(args[1]),
                "stride": _pair(given.get("stride"), (1, 1))}
    if name in POOLINGS:
        kernel = _pair(given.get("kernel_size"), (1, 1))
        return {"kind": "pooling", "input": _shape(args[0]), "kernel": kernel,
                "stride": _pair(given.get("stride"), kernel)}
    if name in LINEAR:
        first = LINEAR[name]
        return {"kind": "linear", "input": _shape(args[first]),
                "weight": _shape(args[first + 1]) if len(args) > first + 1 else None}
    return None
