"""The model probes every lesson shares: build the student's model class, export it, and gather
the model checks' evidence from the exported programs in the clean child.

A lesson describes its model with a `ModelSpec` (the class name, the input layouts it accepts,
what to tell a student) and binds the probes to it in its own probes module:

    MODEL = ModelSpec(name="MyModel", layouts={...}, ...)

    def probe_model(ns):
        return model.probe(ns, MODEL)

The judges are in model_judges.py. The parameter budget is the Lesson record's
`budgets["numbers"]`, read from the record when a probe runs.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

from autograder.engine.probing import need, part, type_name
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import graphs


@dataclass(frozen=True)
class ModelSpec:
    name: str                      # the class the student writes: "MyModel"
    lesson: str                    # the package whose LESSON holds the budget
    layouts: Mapping[str, tuple]   # exported programs: label -> one image's shape
    main: str                      # the layout every check but output_shape runs on
    shapes: Mapping[str, tuple]    # output_shape's inputs: label -> the whole input's shape
    fixed_batch: str               # why export failed when forward fixed the batch size
    shape_fix: str                 # how to get (B, 10) out of every accepted input
    raise_hints: tuple = ()        # (phrase of an error, the fix to add to its message)
    export_hints: tuple = ()       # the same, for an error that stopped the export
    eager_hints: tuple = ()        # the same, when the model raised on the main layout
    layer_example: str = "self.fc1 = nn.Linear(...)"
    # (an error's message, the model probe's data) -> its cause and fix, or None: tried before
    # the phrase hints, for causes that need the numbers of the error (lesson 02's shapes)
    diagnose: Callable[[str, dict], str | None] | None = None

    def max_numbers(self) -> int:
        """The most parameters, buffers and constants the clean child takes (the Lesson record's
        budgets["numbers"]); a lesson may allow fewer as one of its checks."""
        return int(importlib.import_module(self.lesson).LESSON.budgets["numbers"])

    def images(self, x: torch.Tensor, label: str | None = None) -> torch.Tensor:
        """MNIST images (B, 28, 28) in the layout `label` (the main one by default)."""
        return x.reshape(len(x), *self.layouts[label or self.main])


def logits_of(model, x) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward returned a {type_name(out)}, expected a tensor of logits")
    return out


def plain(out: torch.Tensor) -> torch.Tensor:
    return out.detach().cpu().float()


# ----------------------------------------------------------------------------- in the jail

def probe(ns: dict, spec: ModelSpec) -> dict:
    """The student's model in eval mode, its outputs on one batch (a claim the exported
    programs must agree with), its parameters' names, and the exported programs."""
    cls = need(ns, spec.name)
    x = spec.images(fx.train_slice(0, fx.MODEL_BATCH)[0])
    model = cls()
    model.eval()
    with torch.no_grad():
        eager = part(lambda: plain(logits_of(model, x)))
    data = {"eager": eager, "parameters": [name for name, p in model.named_parameters()
                                           if p.requires_grad]}
    too_large = graphs.over_budget(model, spec.max_numbers()) if eager["ok"] else None
    if too_large:
        data["export_errors"] = {spec.main: too_large}
    elif eager["ok"]:
        data["blobs"], data["export_errors"] = {}, {}
        for label in spec.layouts:
            example = spec.images(x, label)
            exported = graphs.export(model, example, fixed_batch=spec.fixed_batch)
            if "export_error" in exported:
                data["export_errors"][label] = exported["export_error"]
                exported = graphs.export(model, example, dynamic=False)
            if "blob" in exported:
                data["blobs"][label] = exported["blob"]
    return data


# ----------------------------------------------------------------------------- in the clean child

def probe_eval(ns: dict, paths: dict, secret: int, spec: ModelSpec) -> dict:
    """The model checks' evidence, from the exported programs only."""
    modules = programs(paths, spec)
    return gather(modules, main_program(modules, spec), spec)


def programs(paths: dict, spec: ModelSpec) -> dict:
    """{layout label: part(the checked program)}, from the files the jail's export wrote."""
    budget = spec.max_numbers()
    return {label: part(lambda p=path: graphs.load(Path(p).read_bytes(), budget))
            for label, path in paths.items()}


def main_program(modules: dict, spec: ModelSpec):
    """The program of the main layout, or GraphRejected: without it nothing can be checked."""
    if spec.main not in modules:
        raise graphs.GraphRejected(f"{graphs.UNTRACED} for {spec.main} inputs")
    if not modules[spec.main]["ok"]:
        raise graphs.GraphRejected(modules[spec.main]["error"]["message"])
    return modules[spec.main]["value"]


def gather(modules: dict, model, spec: ModelSpec) -> dict:
    """Outputs and gradients of the programs on the grader's images, each part on its own."""
    images, y = fx.train_slice(0, fx.INIT_SAMPLES)
    x = spec.images(images)
    blank = spec.images(torch.zeros(fx.MODEL_BATCH, 28, 28))
    with torch.no_grad():
        data = {"shapes": {label: part(lambda s=shape: _shape(modules, images, s, spec))
                           for label, shape in spec.shapes.items()},
                "agree": part(lambda: plain(logits_of(model, x[:fx.MODEL_BATCH]))),
                "pair": part(lambda: _pair(model, x)),
                "init": part(lambda: _batched(model, x)),
                "blank": part(lambda: _batched(model, blank)),
                "white": part(lambda: _batched(model, torch.ones_like(blank)))}
    data["grads"] = part(lambda: _gradients(model, x[:fx.MODEL_BATCH], y[:fx.MODEL_BATCH]))
    data["last"] = part(lambda: graphs.final_operation(model))
    data["constant"] = part(lambda: constant_weights(model))
    return data


def constant_weights(model) -> list[str]:
    """The weights (2 dimensions or more) whose values are all the same, e.g. all zeros: their
    units start identical and stay identical (a zero or constant initialisation)."""
    return [name for name, p in model.named_parameters()
            if p.dim() >= 2 and p.numel() > 1 and bool((p == p.reshape(-1)[0]).all())]


def _shape(modules: dict, images, shape, spec: ModelSpec) -> list[int]:
    label = next(label for label, layout in spec.layouts.items() if tuple(shape[1:]) == layout)
    if label not in modules:
        raise graphs.GraphRejected(f"{graphs.UNTRACED} for {label} inputs")
    if not modules[label]["ok"]:
        raise graphs.GraphRejected(modules[label]["error"]["message"])
    n = shape[0]
    return list(logits_of(modules[label]["value"], images[:n].reshape(shape)).shape)


def _batched(model, x) -> torch.Tensor:
    """Outputs in batches of 64, so only output_shape tests other batch sizes."""
    b = fx.MODEL_BATCH
    return torch.cat([plain(logits_of(model, x[i:i + b])) for i in range(0, len(x), b)])


def _pair(model, x) -> dict:
    """The same 32 images at the top of two batches that differ in their other 32."""
    b = fx.MODEL_BATCH
    first = x[:b]
    second = torch.cat([x[:b // 2], x[b:b + b // 2]])
    return {"first": plain(logits_of(model, first)), "second": plain(logits_of(model, second))}


def _gradients(model, x, y) -> dict:
    """The loss gradient of every parameter of the exported (eval-mode) program."""
    for p in model.parameters():
        p.grad = None
    with torch.enable_grad():
        out = logits_of(model, x)
        train_finite = bool(torch.isfinite(out).all())
        F.cross_entropy(out, y).backward()
    grads = {name: (None if p.grad is None else float(p.grad.abs().max()))
             for name, p in model.named_parameters() if p.requires_grad}
    return {"grads": grads, "train_finite": train_finite}


def midpoint(model, a: torch.Tensor, b: torch.Tensor) -> dict:
    """f(a), f(b) and f((a + b) / 2), image by image: for an affine model (no non-linearity:
    linear layers, convolutions, average poolings) f of the midpoint is the midpoint of the f's."""
    with torch.no_grad():
        return {"a": plain(logits_of(model, a)), "b": plain(logits_of(model, b)),
                "mid": plain(logits_of(model, (a + b) / 2))}
