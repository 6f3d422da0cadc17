"""Probes for lesson 01: call the student's MyModel / fit / accuracy and return plain data.

They run in the sandbox child (or in a student's kernel for a self-check) and never judge.
The model and hidden probes are every lesson's (autograder/lessons/common/model.py, hidden.py),
bound here to lesson 01's MyModel and fit; the accuracy probe is accuracy.py's.
"""
from __future__ import annotations

from autograder.engine.probing import need, replaced, type_name
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import hidden, model
from autograder.lessons.common.model import plain
from autograder.lessons.mnist_dnn import accuracy

FLATTEN = ("flatten the images with x.reshape(len(x), -1) or nn.Flatten(), never with a "
           "fixed batch size")
FIXED_BATCH = f"forward works for one batch size only: {FLATTEN}"
# A layer fed rows of 28 pixels got images that were not flattened; any other size, a chain of
# layers whose sizes do not follow. Eagerly explain.plain_words says "inputs of 28 values";
# torch.export says "same reduction dim, but got [28*B, 28] X [784, 128]".
NOT_FLAT = ("the images were not flattened: flatten every dimension but the first, "
            "x.flatten(start_dim=1), so that (B, 28, 28) and (B, 1, 28, 28) become (B, 784), "
            "before the first nn.Linear(784, ...)")
CHAIN = ("each nn.Linear's in_features must be the number of values it receives: 784 for the "
         "first, then the out_features of the layer before it")
SHAPE_HINTS = (("inputs of 28 values", NOT_FLAT), (", 28] X [", NOT_FLAT),
               ("invalid for input of size", FLATTEN),
               ("cannot be multiplied", CHAIN), ("same reduction dim", CHAIN))

# The model checks (autograder/lessons/common/model.py): one exported program per accepted input
# layout, the batch dimension dynamic; output_shape also tries these whole input shapes.
MODEL = model.ModelSpec(
    name="MyModel", lesson="autograder.lessons.mnist_dnn",
    layouts={"(B, 28, 28)": (28, 28), "(B, 1, 28, 28)": (1, 28, 28), "(B, 784)": (784,)},
    main="(B, 28, 28)",
    shapes={"(1, 28, 28)": (1, 28, 28), "(7, 28, 28)": (7, 28, 28),
            "(64, 28, 28)": (64, 28, 28), "(7, 1, 28, 28)": (7, 1, 28, 28),
            "(7, 784)": (7, 784)},
    fixed_batch=FIXED_BATCH,
    shape_fix=f"{FLATTEN}, and end with a layer of 10 outputs",
    raise_hints=SHAPE_HINTS, export_hints=SHAPE_HINTS, eager_hints=SHAPE_HINTS)


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
    model.eval()  # fit must switch it to training mode (model.train(), every epoch)
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
    it met and the gradients once it finished; each optimizer step {"kind": "step", "params"},
    with what the step found, to explain a step that changed nothing (never to earn points):
    "own" (it holds the ProbeNet's parameters), "gradient" (they had a non-zero gradient) and
    "mid_pass" (it ran after a forward pass whose backward had not run yet)."""

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
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self._add({"kind": "step", "params": fx.flat(self.params),
                   "own": any(id(p) in held for p in self.params),
                   "gradient": any(p.grad is not None and bool(p.grad.any())
                                   for p in self.params),
                   "mid_pass": self.pending is not None})

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


# ----------------------------------------------------------------------------- hidden

def train_with_fit(ns: dict, model, x, y, x_val, y_val, epochs: int, batch_size: int) -> None:
    """The hidden check's training: the student's own fit, with the grader's accuracy."""
    with replaced(ns, "accuracy", fx.reference_accuracy):
        ns["fit"](model, x, y, x_val, y_val, epochs=epochs, batch_size=batch_size)


HIDDEN = hidden.HiddenSpec(
    name="MyModel", needs=("MyModel", "fit"), train=train_with_fit, trainer="your fit",
    epochs=fx.HIDDEN_EPOCHS, batch_size=fx.HIDDEN_BATCH, lesson="autograder.lessons.mnist_dnn",
    layout=(28, 28), fixed_batch=FIXED_BATCH,
    unchanged="fit did not change any of your model's parameters: fit must train the model it "
              "is given (optimizer over model.parameters(), backward and step on every batch)",
    too_weak="the model is too weak (use a hidden layer with a non-linearity such as ReLU) or "
             "training does not work (see the fit checks)")



def probe_model(ns: dict) -> dict:
    return model.probe(ns, MODEL)


def probe_model_eval(ns: dict, paths: dict, secret: int) -> dict:
    return model.probe_eval(ns, paths, secret, MODEL)


def probe_hidden(ns: dict) -> dict:
    return hidden.probe(ns, HIDDEN)


def probe_hidden_eval(ns: dict, paths: dict, secret: int) -> dict:
    return hidden.probe_eval(ns, paths, secret, HIDDEN)


PROBES = {"model": probe_model, "model_eval": probe_model_eval, "fit": probe_fit,
          "accuracy": accuracy.probe_accuracy,  # its cases come from the grader's secret
          "hidden": probe_hidden, "hidden_eval": probe_hidden_eval}
