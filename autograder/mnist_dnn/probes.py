"""Probes for lesson 01: call the student's MyModel / fit / accuracy and return plain data.

They run in the sandbox child (or in a student's kernel for a self-check) and never judge.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from autograder.probing import need, part, replaced, type_name
from autograder.mnist_dnn import fixtures as fx

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

def probe_model(ns: dict) -> dict:
    MyModel = need(ns, "MyModel")
    x, y = fx.train_slice(0, fx.INIT_SAMPLES)
    model = MyModel()
    model.eval()
    with torch.no_grad():
        data = {"shapes": {label: part(lambda s=shape: _shape(model, x, s))
                           for label, shape in INPUT_SHAPES.items()},
                "pair": part(lambda: _pair(model, x)),
                "init": part(lambda: _batched(model, x)),
                "blank": part(lambda: _batched(model, torch.zeros(fx.MODEL_BATCH, 28, 28))),
                "white": part(lambda: _batched(model, torch.ones(fx.MODEL_BATCH, 28, 28)))}
    data["grads"] = part(lambda: _gradients(model, x[:fx.MODEL_BATCH], y[:fx.MODEL_BATCH]))
    return data


def _shape(model, x, shape) -> list[int]:
    n = shape[0]
    return list(logits_of(model, x[:n].reshape(shape)).shape)


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
    model.train()
    model.zero_grad()
    out = logits_of(model, x)
    train_finite = bool(torch.isfinite(out).all())
    F.cross_entropy(out, y).backward()
    grads = {name: (None if p.grad is None else float(p.grad.abs().max()))
             for name, p in model.named_parameters() if p.requires_grad}
    return {"grads": grads, "train_finite": train_finite}


# ----------------------------------------------------------------------------- fit

def probe_fit(ns: dict) -> dict:
    fit = need(ns, "fit")
    x, y = fx.train_slice(fx.FIT_OFFSET, fx.FIT_N)
    x = fx.stamp(x)
    x_val, y_val = fx.train_slice(fx.FIT_OFFSET + fx.FIT_N, fx.FIT_VAL)
    model = fx.ProbeNet(y)
    log = FitLog(model)
    before = model.loss(x, y)
    with log, replaced(ns, "accuracy", fx.reference_accuracy):
        history = fit(model, x, y, x_val, y_val, epochs=fx.FIT_EPOCHS, batch_size=fx.FIT_BATCH)
    return {"n": fx.FIT_N, "batch_size": fx.FIT_BATCH, "epochs": fx.FIT_EPOCHS,
            "batches": log.batches, "steps": log.steps, "foreign_steps": log.foreign_steps,
            "grad_errors": log.grad_errors, "unknown_batches": log.unknown,
            "loss_before": before, "loss_after": model.loss(x, y),
            "history": describe_history(history), "constant": _constant(ns, "BATCH_SIZE")}


def _constant(ns: dict, name: str) -> int | None:
    value = ns.get(name)
    return value if type(value) is int else None


class FitLog:
    """Hooks on the ProbeNet and on every optimizer: which samples each backward used, whether
    the gradient then equals that batch's own gradient, and how many optimizer steps ran."""

    def __init__(self, model: fx.ProbeNet):
        self.model = model
        self.params = list(model.body.parameters())
        self.position = {id(p): i for i, p in enumerate(self.params)}
        self.batches, self.grad_errors = [], []
        self.steps = self.foreign_steps = self.unknown = 0
        self.expected = None
        self.handles = []

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]
        self.handles.append(register_optimizer_step_post_hook(self._on_step))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def _on_grad(self, param):
        if self.model.pending is not None:  # the first gradient of a new backward pass
            index, self.expected = self.model.pending
            self.model.pending = None
            if index is None:
                self.unknown += 1
            else:
                self.batches.append(index.clone())
                self.grad_errors.append(0.0)
        if self.expected is not None and self.grad_errors:
            expected = self.expected[self.position[id(param)]]
            error = (param.grad - expected).abs().max() / (expected.abs().max() + 1e-8)
            self.grad_errors[-1] = max(self.grad_errors[-1], float(error))

    def _on_step(self, optimizer, args, kwargs):
        self.steps += 1
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not held & set(self.position):
            self.foreign_steps += 1


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
MODE_CASE = (10, 3)


def probe_accuracy(ns: dict) -> dict:
    accuracy = need(ns, "accuracy")
    return {"cases": {name: part(lambda c=case: _value(accuracy, *c))
                      for name, case in MATCH_CASES.items()},
            "mode": {"train": part(lambda: _mode(accuracy, True)),
                     "eval": part(lambda: _mode(accuracy, False))}}


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
    """The student's MyModel trained by the student's fit, exported as a TorchScript graph that
    a fresh child, running none of the student's code, scores on the test set (hidden_eval)."""
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
    return {"parameters": len(before), "changed": changed, **export(model, x[:fx.EXPORT_CHUNK])}


def export(model, example) -> dict:
    """{"blob": the traced graph's bytes} or {"trace_error": why tracing failed}."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
    except Exception as error:
        return {"trace_error": f"{type(error).__name__}: {str(error)[:300]}"}
    return {"blob": torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)}


def probe_hidden_eval(ns: dict, path: str) -> dict:
    """In a fresh child that holds no student code: the exported graph's predictions on the
    perturbed test images and on trained-on images (the grader compares them with labels)."""
    blob = Path(path).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
    sets = fx.hidden_sets(fx.noise_seed(blob))
    with torch.no_grad():
        return {name: _predict(module, x) for name, (x, _) in sets.items()}


def _predict(module, x) -> torch.Tensor:
    chunk, predictions = fx.EXPORT_CHUNK, []
    for i in range(0, len(x), chunk):
        out = module(x[i:i + chunk])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (chunk, 10):
            raise ValueError(f"the traced model returned {getattr(out, 'shape', type(out))} "
                             f"for a batch of {chunk} images instead of ({chunk}, 10)")
        predictions.append(out.argmax(dim=1).to(torch.uint8))
    return torch.cat(predictions)


PROBES = {"model": probe_model, "fit": probe_fit, "accuracy": probe_accuracy,
          "hidden": probe_hidden, "hidden_eval": probe_hidden_eval}
