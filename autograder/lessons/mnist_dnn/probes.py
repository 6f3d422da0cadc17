"""Probes for lesson 01: call the student's MyModel / fit / accuracy and return plain data.

They run in the sandbox child (or in a student's kernel for a self-check) and never judge.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from autograder.engine.probing import need, part, replaced, type_name
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import graphs

INPUT_SHAPES = {"(1, 28, 28)": (1, 28, 28), "(7, 28, 28)": (7, 28, 28),
                "(64, 28, 28)": (64, 28, 28), "(7, 1, 28, 28)": (7, 1, 28, 28),
                "(7, 784)": (7, 784)}


def logits_of(model, x) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward returned a {type_name(out)}, expected a tensor of logits")
    return out


def plain(out: torch.Tensor) -> torch.Tensor:
    return out.detach().cpu().float()


# ----------------------------------------------------------------------------- model

# The exported programs, one per accepted input layout; the batch dimension is dynamic.
LAYOUTS = {"(B, 28, 28)": (28, 28), "(B, 1, 28, 28)": (1, 28, 28), "(B, 784)": (784,)}
MAIN = "(B, 28, 28)"


def probe_model(ns: dict) -> dict:
    """In the jail: MyModel() in eval mode, its outputs on one batch (a claim the exported
    programs must agree with), its parameters' names, and the exported programs."""
    MyModel = need(ns, "MyModel")
    x, _ = fx.train_slice(0, fx.MODEL_BATCH)
    model = MyModel()
    model.eval()
    with torch.no_grad():
        eager = part(lambda: plain(logits_of(model, x)))
    data = {"eager": eager, "parameters": [name for name, p in model.named_parameters()
                                           if p.requires_grad]}
    if eager["ok"] and graphs.over_budget(model):
        data["export_errors"] = {MAIN: graphs.over_budget(model)}
    elif eager["ok"]:
        data["blobs"], data["export_errors"] = {}, {}
        for label, layout in LAYOUTS.items():
            exported = graphs.export(model, x.reshape(len(x), *layout))
            if "export_error" in exported:
                data["export_errors"][label] = exported["export_error"]
                exported = graphs.export(model, x.reshape(len(x), *layout), dynamic=False)
            if "blob" in exported:
                data["blobs"][label] = exported["blob"]
    return data


def probe_model_eval(ns: dict, paths: dict, secret: int) -> dict:
    """In the clean child: the model checks' evidence, from the exported programs only."""
    modules = {label: part(lambda p=path: graphs.load(Path(p).read_bytes()))
               for label, path in paths.items()}
    if MAIN not in modules:
        raise graphs.GraphRejected("your model could not be exported for (B, 28, 28) inputs")
    if not modules[MAIN]["ok"]:
        raise graphs.GraphRejected(modules[MAIN]["error"]["message"])
    model = modules[MAIN]["value"]
    x, y = fx.train_slice(0, fx.INIT_SAMPLES)
    with torch.no_grad():
        data = {"shapes": {label: part(lambda s=shape: _shape(modules, x, s))
                           for label, shape in INPUT_SHAPES.items()},
                "agree": part(lambda: plain(logits_of(model, x[:fx.MODEL_BATCH]))),
                "pair": part(lambda: _pair(model, x)),
                "init": part(lambda: _batched(model, x)),
                "blank": part(lambda: _batched(model, torch.zeros(fx.MODEL_BATCH, 28, 28))),
                "white": part(lambda: _batched(model, torch.ones(fx.MODEL_BATCH, 28, 28)))}
    data["grads"] = part(lambda: _gradients(model, x[:fx.MODEL_BATCH], y[:fx.MODEL_BATCH]))
    return data


def _shape(modules: dict, x, shape) -> list[int]:
    label = next(label for label, layout in LAYOUTS.items() if tuple(shape[1:]) == layout)
    if label not in modules:
        raise graphs.GraphRejected(f"your model could not be exported for {label} inputs")
    if not modules[label]["ok"]:
        raise graphs.GraphRejected(modules[label]["error"]["message"])
    n = shape[0]
    return list(logits_of(modules[label]["value"], x[:n].reshape(shape)).shape)


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


# ----------------------------------------------------------------------------- fit

def probe_fit(ns: dict) -> dict:
    """The student's fit trains the grader's ProbeNet on stamped images. What comes back is a
    claim — each training batch, the parameters it met, the gradient it left, the parameters
    after each optimizer step — that the grader replays (replay.py) before giving points."""
    fit = need(ns, "fit")
    x, y = fx.train_slice(fx.FIT_OFFSET, fx.FIT_N)
    x = fx.stamp(x)
    x_val, y_val = fx.train_slice(fx.FIT_OFFSET + fx.FIT_N, fx.FIT_VAL)
    model = fx.ProbeNet()
    log = FitLog(model)
    with log, replaced(ns, "accuracy", fx.reference_accuracy):
        history = fit(model, x, y, x_val, y_val, epochs=fx.FIT_EPOCHS, batch_size=fx.FIT_BATCH)
    return {"events": log.events, "truncated": log.truncated,
            "final": fx.flat(model.body.parameters()),
            "history": describe_history(history), "constant": _constant(ns, "BATCH_SIZE")}


def _constant(ns: dict, name: str) -> int | None:
    value = ns.get(name)
    return value if type(value) is int else None


class FitLog:
    """Hooks on the ProbeNet and on every optimizer. Each backward pass through the ProbeNet
    becomes {"kind": "backward", "x", "params", "grad"}: the batch it was given, the parameters
    it met and the gradients once it finished; each optimizer step {"kind": "step", "params"}."""

    MAX_EVENTS = 120  # a correct fit makes 48 (24 backward passes and 24 steps)

    def __init__(self, model: fx.ProbeNet):
        self.model = model
        self.params = list(model.body.parameters())
        self.events, self.truncated = [], False
        self.pending, self.arrived = None, 0
        self.handles = []

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.model.on_forward = self._on_forward
        self.handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]
        self.handles.append(register_optimizer_step_post_hook(self._on_step))
        return self

    def __exit__(self, *exc):
        self.model.on_forward = None
        for handle in self.handles:
            handle.remove()

    def _on_forward(self, x):
        self.pending = {"kind": "backward", "x": plain(x).clone(),
                        "params": fx.flat(self.params)}
        self.arrived = 0

    def _on_grad(self, param):
        self.arrived += 1
        if self.pending is not None and self.arrived == len(self.params):
            self.pending["grad"] = fx.flat(p.grad for p in self.params)
            self._add(self.pending)
            self.pending = None

    def _on_step(self, optimizer, args, kwargs):
        self._add({"kind": "step", "params": fx.flat(self.params)})

    def _add(self, event: dict) -> None:
        if len(self.events) < self.MAX_EVENTS:
            self.events.append(event)
        else:
            self.truncated = True


def describe_history(history) -> dict:
    values = {}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        try:
            values[key] = [float(v) for v in history[key]]
        except Exception:
            pass
    return {"type": type_name(history), "values": values}


# ----------------------------------------------------------------------------- accuracy

MATCH_CASES = {"1237 samples": (1237, 1), "10 samples": (10, 2)}
CHUNKED_CASE = "1237 samples"
MODE_CASE = (10, 3)


def probe_accuracy(ns: dict) -> dict:
    accuracy = need(ns, "accuracy")
    return {"cases": {name: part(lambda c=case: _value(accuracy, *c))
                      for name, case in MATCH_CASES.items()},
            "chunks": part(lambda: _chunks(accuracy, *MATCH_CASES[CHUNKED_CASE])),
            "mode": {"train": part(lambda: _mode(accuracy, True)),
                     "eval": part(lambda: _mode(accuracy, False))}}


def _chunks(accuracy, n: int, seed: int) -> list[int]:
    """The batch sizes the model was called with, even if accuracy failed after calling it
    (its value is another check's business)."""
    logits, x, y = fx.lookup_case(n, seed)
    model = fx.LookupModel(logits)
    try:
        accuracy(model, x, y)
    except Exception:
        if not model.calls:
            raise
    return [call["batch"] for call in model.calls]


def _value(accuracy, n: int, seed: int) -> dict:
    logits, x, y = fx.lookup_case(n, seed)
    model = fx.LookupModel(logits)
    value = describe_value(accuracy(model, x, y))
    value["batches"] = [call["batch"] for call in model.calls]
    return value


def _mode(accuracy, training: bool) -> dict:
    logits, x, y = fx.lookup_case(*MODE_CASE)
    model = fx.LookupModel(logits)
    model.train(training)
    value = describe_value(accuracy(model, x, y))
    return {"value": value, "calls": model.calls, "training_after": model.training}


def describe_value(value) -> dict:
    number = None
    try:
        number = float(value)
    except Exception:
        pass
    return {"type": type_name(value), "is_float": isinstance(value, float), "value": number,
            "repr": repr(value)[:80]}


# ----------------------------------------------------------------------------- hidden

def probe_hidden(ns: dict) -> dict:
    """The student's MyModel trained by the student's fit on the training set, exported. What
    this returns is a claim; the clean child scores the exported program (hidden_eval)."""
    MyModel, fit = need(ns, "MyModel", "fit")
    data = fx.mnist()
    x, y = data["x_train"].clone(), data["y_train"].clone()
    x_val, y_val = x[:fx.HIDDEN_VAL].clone(), y[:fx.HIDDEN_VAL].clone()
    model = MyModel()
    before = [p.detach().clone() for p in model.parameters()]
    with replaced(ns, "accuracy", fx.reference_accuracy):
        fit(model, x, y, x_val, y_val, epochs=fx.HIDDEN_EPOCHS, batch_size=fx.HIDDEN_BATCH)
    changed = sum(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
    model.eval()
    example = x[:graphs.EXAMPLE_BATCH]
    with torch.no_grad():
        eager = part(lambda: plain(logits_of(model, x[:fx.AGREE_N])))
    exported = ({"export_error": graphs.over_budget(model)} if graphs.over_budget(model)
                else graphs.export(model, example))
    blobs = {"model": exported.pop("blob")} if "blob" in exported else {}
    return {"parameters": len(before), "changed": changed, "eager": eager, "blobs": blobs,
            **exported}


def probe_hidden_eval(ns: dict, paths: dict, secret: int) -> dict:
    """In the clean child: check the exported program, then predict the test images and the
    training images picked by the grader's secret, and the agreement images (logits)."""
    if "model" not in paths:
        raise graphs.GraphRejected("no exported model came back")
    module = graphs.load(Path(paths["model"]).read_bytes())
    sets = fx.hidden_sets(secret)
    out = {name: graphs.predict(module, x, fx.EXPORT_CHUNK).argmax(dim=1).to(torch.uint8)
           for name, (x, _) in sets.items()}
    out["agree"] = graphs.predict(module, fx.train_slice(0, fx.AGREE_N)[0], fx.EXPORT_CHUNK)
    return out


PROBES = {"model": probe_model, "model_eval": probe_model_eval, "fit": probe_fit,
          "accuracy": probe_accuracy, "hidden": probe_hidden, "hidden_eval": probe_hidden_eval}
