"""The student's model as evidence: exported in the jail (`torch.export`), checked and run in
the clean child, which never runs student code.

What the jail sends is bytes in the plain format of `plaingraph` (JSON and raw tensor bytes:
never `torch.export.save`'s archive, whose loading unpickles and evaluates what the archive
says). Whatever they claim to be, the clean child rebuilds the program from them and runs it
only if every operation is on the lesson's allow-list (no file, random or in-place operations,
no control flow but no-grad regions), it takes one input and returns one tensor, and it holds at
most the lesson's budget of parameters, buffers and constants (the Lesson record's
`budgets["numbers"]`, passed in by the lesson's probes).
"""
from __future__ import annotations

import operator
import re
import warnings

import torch

from autograder.lessons.common import plaingraph

EXAMPLE_BATCH = 100        # the batch size the model is exported with (its batch dim is dynamic)
MAX_BATCH = 2 ** 16
FIXED_BATCH = "forward works for one batch size only: never use a fixed batch size in forward"
# What a student reads when torch.export could not follow forward (no word of "export")
UNTRACED = "the grader could not follow your forward as PyTorch operations"

# Operations a fully connected or small convolutional MNIST classifier needs, by schema name.
# Left out on purpose: file and random ops, indexing and comparisons (table look-ups), in-place
# ops, and anything that is not an ATen operator.
ALLOWED = {f"aten::{name}" for name in (
    "linear addmm mm matmul bmm t transpose permute reshape view _unsafe_view flatten unflatten "
    "squeeze unsqueeze expand expand_as contiguous clone alias detach lift_fresh_copy "
    "_to_copy to "
    "sym_size sym_numel size slice select split cat stack "
    "relu relu6 leaky_relu elu selu gelu silu mish tanh sigmoid hardtanh softplus prelu "
    "hardswish hardsigmoid "
    "softmax _softmax log_softmax _log_softmax "
    "conv1d conv2d convolution max_pool2d max_pool2d_with_indices avg_pool2d "
    "adaptive_avg_pool2d adaptive_max_pool2d "
    "batch_norm _native_batch_norm_legit_no_training layer_norm group_norm dropout "
    "feature_dropout alpha_dropout feature_alpha_dropout "
    "add sub rsub mul div neg abs pow sqrt rsqrt exp log log1p clamp clamp_min clamp_max "
    "square reciprocal maximum minimum mean sum amax var std linalg_vector_norm "
    "_assert_scalar _assert_tensor_metadata sym_constrain_range_for_size").split()}
# Their `train` argument (by position) must be False: in eval mode they are deterministic
TRAINING_FLAG = {"aten::batch_norm": 5, "aten::dropout": 2, "aten::feature_dropout": 2,
                 "aten::alpha_dropout": 2, "aten::feature_alpha_dropout": 2}
HIGHER_ORDER = {"wrap_with_set_grad_enabled"}                  # torch.no_grad() in forward
PYTHON = {operator.getitem}


class GraphRejected(Exception):
    """The exported program is missing, unreadable or outside the lesson's allow-list."""


# ----------------------------------------------------------------------------- in the jail

def export(model: torch.nn.Module, example: torch.Tensor, dynamic: bool = True,
           fixed_batch: str = FIXED_BATCH) -> dict:
    """{"blob": the exported program's bytes} or {"export_error": why export failed}.
    The batch dimension is dynamic, so one program serves every batch size; `fixed_batch` is
    the lesson's explanation when forward makes it a constant."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes = ({0: batch},) if dynamic else None
    example = example.clone()  # the program keeps its example: a view would bring its storage
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (example,), dynamic_shapes=shapes, strict=True)
            blob = plaingraph.encode(functional(program))
    except plaingraph.Unsupported as error:
        return {"export_error": f"forward uses {error}, which the grader cannot check"}
    except Exception as error:
        return {"export_error": _why(error, fixed_batch)}
    return {"blob": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}


def functional(program):
    """The program without in-place operations: relu_ on a fresh intermediate
    (nn.ReLU(inplace=True)) becomes relu; a change to an input or a buffer becomes an extra
    output, which `load` refuses. Rewriting costs ~0.5 s, so only a program that has one."""
    if any(getattr(getattr(node.target, "_schema", None), "is_mutable", False)
           for node in program.graph.nodes):
        return program.run_decompositions({})
    return program


def over_budget(model: torch.nn.Module, max_numbers: int) -> str | None:
    """Why a model is too large to export (checked again in the clean child), or None."""
    numbers = sum(t.numel() for t in model.state_dict().values())
    return budget_message(numbers, max_numbers) if numbers > max_numbers else None


def budget_message(numbers: int, max_numbers: int) -> str:
    return (f"the model holds {numbers:,} numbers (parameters, buffers, constants); this "
            f"lesson allows at most {max_numbers:,}")


def _why(error: Exception, fixed_batch: str) -> str:
    text = str(error)
    if "specialized it to be a constant" in text or "Constraints violated" in text:
        return fixed_batch
    inner = FAKE_CALL.search(text)
    if inner:  # "RuntimeError when making fake tensor call": the layer's own error is inside
        return f"{inner['type']}: {SYMBOL.sub('B', inner['message'])[:300]}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first[:300]}"


FAKE_CALL = re.compile(r"got (?P<type>\w+)\(['\"](?P<message>.+?)['\"]\)\n")
SYMBOL = re.compile(r"\bs\d+\b")  # torch.export's name for the dynamic batch size


# ----------------------------------------------------------------------------- in the clean child

def load(blob: bytes, max_numbers: int) -> torch.nn.Module:
    """The checked program as a module (parameters trainable), or GraphRejected. `max_numbers`
    is the lesson's budget of parameters, buffers and constants. Nothing in the bytes is
    unpickled or evaluated: see plaingraph."""
    try:
        nodes, tensors = plaingraph.decode(bytes(blob), resolve)
    except plaingraph.Unreadable as error:
        raise GraphRejected(f"your model's graph could not be read ({error})")
    numbers = sum(t.numel() for t in tensors.values())
    if numbers > max_numbers:
        raise GraphRejected(budget_message(numbers, max_numbers))
    inputs = [n for n in nodes if n["op"] == "placeholder" and n["kind"] == "input"]
    outputs = nodes[-1]["args"]
    if len(inputs) != 1 or not (isinstance(outputs, tuple) and len(outputs) == 1
                                and isinstance(outputs[0], (tuple, list))):
        raise GraphRejected("forward must take one tensor (the images) and return one tensor")
    if len(outputs[0]) != 1:  # torch.export returns a mutated buffer's new value first
        raise GraphRejected("forward changes a buffer or its input in place, or returns more "
                            "than the logits: a model must give the same output for the same "
                            "images every time it is called")
    try:
        return plaingraph.Program(nodes, tensors)
    except plaingraph.Unreadable as error:
        raise GraphRejected(f"your model's graph could not be read ({error})")


def resolve(name, args: tuple, kwargs: dict):
    """The callable of operator `name` ("aten::linear.default", "python::getitem",
    "hop::wrap_with_set_grad_enabled") if the lesson's allow-list has it, else GraphRejected."""
    if not isinstance(name, str):
        raise GraphRejected("your model's graph names an operator oddly")
    kind, _, op = name.partition("::")
    python = {f.__name__: f for f in PYTHON}
    if kind == "python" and op in python:
        return python[op]
    if kind == "hop" and op in HIGHER_ORDER:
        return plaingraph.set_grad_enabled_region
    base, _, overload = op.partition(".")
    try:
        packet = getattr(torch.ops.aten, base) if kind == "aten" and base.isidentifier() \
            else None
        target = getattr(packet, overload or "default") if packet is not None else None
    except (AttributeError, RuntimeError):
        target = None
    if not isinstance(target, torch._ops.OpOverload):
        raise GraphRejected(f"forward uses {name[:80]}, which this lesson does not allow in a "
                            f"model (no file, random, in-place or look-up operations): build "
                            f"forward from layers, activations and arithmetic")
    _allowed_call(target, args, kwargs)
    return target


def _allowed(node) -> None:
    """The allow-list, on a node of a torch.fx graph."""
    target = node.target
    if target in PYTHON:
        return
    if isinstance(target, torch._ops.HigherOrderOperator) and target.name() in HIGHER_ORDER:
        return
    _allowed_call(target, node.args, node.kwargs)


def _allowed_call(target, args, kwargs) -> None:
    schema = getattr(target, "_schema", None)
    name = schema.name if schema is not None else str(target)
    if schema is not None and schema.is_mutable:
        raise GraphRejected(f"forward changes a tensor in place ({name}): a model must give the "
                            f"same output for the same images every time it is called")
    if schema is None or name not in ALLOWED:
        raise GraphRejected(f"forward uses {name}, which this lesson does not allow in a model "
                            f"(no file, random, in-place or look-up operations): build forward "
                            f"from layers, activations and arithmetic")
    flag = TRAINING_FLAG.get(name)
    train = None if flag is None else (
        args[flag] if len(args) > flag else kwargs.get(schema.arguments[flag].name))
    if flag is not None and train is not False:  # True, or passed where it was not looked for
        raise GraphRejected(f"{name} runs in training mode although the grader called "
                            f"model.eval() first: use the layer (nn.Dropout, nn.BatchNorm2d), or "
                            f"pass training=self.training")


# Operations that only reshape or copy: the output's last real operation is behind them
PASS_THROUGH = {f"aten::{name}" for name in (
    "view reshape _unsafe_view flatten squeeze unsqueeze clone contiguous alias detach "
    "_to_copy to").split()}


def final_operation(program: plaingraph.Program) -> str | None:
    """The schema name of the last operation that computes the program's output
    ("aten::linear"), looking through reshapes and copies; None for a Python operator."""
    nodes = {node["name"]: node for node in program.nodes}
    ref = program.nodes[-1]["args"][0][0]
    while isinstance(ref, plaingraph.Ref) and nodes[ref]["op"] == "call_function":
        schema = getattr(nodes[ref]["fn"], "_schema", None)
        if schema is None:
            return None
        if schema.name not in PASS_THROUGH:
            return schema.name
        ref = nodes[ref]["args"][0]
    return None


def predict(module, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits of the checked module on x, chunk by chunk; shapes are verified."""
    outputs = []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            batch = x[i:i + chunk]
            out = module(batch)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(batch), 10):
                raise GraphRejected(f"your model returned "
                                    f"{tuple(getattr(out, 'shape', ()))} for a batch of "
                                    f"{len(batch)} images instead of ({len(batch)}, 10)")
            outputs.append(out.float())
    return torch.cat(outputs)
