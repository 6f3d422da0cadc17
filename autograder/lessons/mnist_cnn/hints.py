"""Lesson 02's word on an error raised in MyCNN: the cause, read from the numbers of the error
and from the layers the forward pass met before it (graph.trace, reported by the jail: it can
only explain a check that failed anyway, never pass one).

    diagnose("... weight of size [16, 3, 5, 5], expected input[64, 1, 28, 28] to have 3 channels,
              but got 1 channels instead", data)
    -> "the first convolution takes the images, which have 1 channel: nn.Conv2d(1, 16, ...) ..."
"""
from __future__ import annotations

import re

FLATTEN = ("flatten the feature maps with x.flatten(1) (or x.reshape(len(x), -1)), never with "
           "a fixed batch size such as x.view(64, -1)")
CHANNEL = ("add the channel dimension when it is missing — if x.dim() == 3: "
           "x = x.unsqueeze(1) — so that (B, 28, 28) becomes (B, 1, 28, 28), the shape "
           "nn.Conv2d expects")
FLAT_SIZE = ("the first nn.Linear's in_features must be channels × side × side of the last "
             "feature maps: compute the side with conv_output_size, layer by layer from 28")

CHANNELS = re.compile(r"weight of size \[(\d+), (\d+), \d+, \d+\], expected input\[([^\]]*)\] "
                      r"to have \d+ channels, but got (\w+) channels")
# eager: "mat1 and mat2 shapes cannot be multiplied (64x8464 and 2304x10)"; traced:
# "a and b must have same reduction dim, but got [B, 8464] X [2304, 10]"
PRODUCT = re.compile(r"\((?P<rows>\w+)x(?P<features>\w+) and (?P<inputs>\d+)x\d+\)|"
                     r"got \[(?P<rows2>[^,\]]+), (?P<features2>[^\]]+)\] X \[(?P<inputs2>\d+), "
                     r"\d+\]")
BATCHES = {"64", "B"}  # the batch of the model checks, and the traced (dynamic) batch


def diagnose(message: str, data: dict) -> str | None:
    """The cause of an error raised by MyCNN, or None when the numbers do not tell."""
    found = CHANNELS.search(message)
    if found:
        return _channels(*found.groups())
    found = PRODUCT.search(message)
    if found:
        rows = found["rows"] or found["rows2"]
        features = found["features"] or found["features2"]
        inputs = found["inputs"] or found["inputs2"]
        return _flattened(rows.strip(), features.strip(), int(inputs), _steps(data))
    return None


def _channels(out_channels: str, in_channels: str, given: str, got: str) -> str:
    shape = [s.strip() for s in given.split(",")]
    if len(shape) == 4 and shape[0] == "1" and shape[1] == got and shape[2:] == ["28", "28"]:
        return CHANNEL  # (B, 28, 28) taken for one image of B channels
    layer = f"nn.Conv2d({in_channels}, {out_channels}, ...)"
    if shape[2:] == ["28", "28"] and got == "1":
        return (f"the first convolution takes the images, which have 1 channel (grey), but it "
                f"is {layer}: make its in_channels 1 — nn.Conv2d(1, {out_channels}, ...)")
    return (f"the convolution {layer} expects {in_channels} input channels, but the maps that "
            f"reach it have {got}: its in_channels must be the out_channels of the convolution "
            f"before it ({got})")


def _flattened(rows: str, features: str, inputs: int, steps: list) -> str:
    """A matrix product of (rows, features) by (inputs, out) that failed: which flatten did it."""
    if rows == "1":
        return (f"the first nn.Linear received one row of {features} numbers: x.view(-1) (or "
                f"x.flatten()) flattened the batch too — {FLATTEN}")
    if rows not in BATCHES:
        return (f"the first nn.Linear received {rows} rows for a batch of 64 images: the "
                f"batch size is written into forward (x.view({rows}, -1)) — {FLATTEN}")
    maps = _last_maps(steps)
    stride_one = next((s for s in steps if s["kind"] == "pooling" and s["kernel"] != [1, 1]
                       and s["stride"] == [1, 1]), None)
    if stride_one:
        k = stride_one["kernel"][0]
        return (f"a {k} × {k} pooling has stride=1, so it moves by one pixel and barely shrinks "
                f"the maps ({_sides(stride_one)}): its stride must be {k}, the default — "
                f"nn.MaxPool2d({k}); then {FLAT_SIZE}")
    if maps:
        c, h, w = maps
        return (f"the last feature maps are {c} × {h} × {w} = {c * h * w} numbers per image, "
                f"but the first nn.Linear takes in_features={inputs}: {FLAT_SIZE}")
    return FLAT_SIZE


def _steps(data) -> list:
    trace = data.get("trace") if isinstance(data, dict) else None
    steps = trace.get("value") if isinstance(trace, dict) and trace.get("ok") else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def _last_maps(steps: list) -> list[int] | None:
    """(channels, height, width) of the last convolution's or pooling's output."""
    for step in reversed(steps):
        out = step.get("output")
        if step["kind"] != "linear" and isinstance(out, list) and len(out) == 4:
            return out[1:]
    return None


def _sides(step: dict) -> str:
    before, after = step.get("input") or [], step.get("output") or []
    if len(before) == 4 and len(after) == 4:
        return f"{before[2]} × {before[3]} → {after[2]} × {after[3]}"
    return "one pixel less per side"
