"""Probes for lesson 02: call the student's conv2d_by_hand, conv_output_size and MyCNN, return
plain data.

They run in the sandbox child (or in a student's kernel for a self-check) and never judge.
The model and hidden probes are every lesson's (autograder/lessons/common/model.py, hidden.py),
bound here to MyCNN; the clean child adds what it reads from the exported graph (graph.py).
MyCNN is built with the grader's conv_output_size, so that a slip in gap 2 costs gap 2's points
only; the model probe says how MyCNN differs with the student's own.
"""
from __future__ import annotations

import re

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from autograder.engine.probing import need, part, replaced, type_name
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import hidden, model
from autograder.lessons.common.judging import close
from autograder.lessons.mnist_cnn import graph, hints

LESSON = "autograder.lessons.mnist_cnn"  # its LESSON holds the budget and the threshold

# ----------------------------------------------------------------------------- gap 1: by hand

CONV_CASES = 12
# The lesson's own example (section 2): a vertical edge and the kernel that finds it
EDGE_IMAGE = [[0., 0., 0., 1., 1., 1.]] * 5
EDGE_KERNEL = [[-1., 0., 1.]] * 3


def conv_cases(secret: int) -> list[dict]:
    """{"x": (C_in, H, W), "weight": (C_out, C_in, kh, kw), "bias": (C_out,)}: the lesson's edge,
    then cases drawn from the grading's secret (the jail gets it with the probe, the judge draws
    the same) with small integer values, so that every sum is exact: 1 to 3 channels in and out,
    sides 1 to 9, kernels 1 to 4 that fit, non-square ones among them."""
    g = torch.Generator().manual_seed(secret)
    cases = [{"x": torch.tensor([EDGE_IMAGE]), "weight": torch.tensor([[EDGE_KERNEL]]),
              "bias": torch.zeros(1)}]
    while len(cases) < CONV_CASES:
        c_in, c_out, h, w, kh, kw = (int(torch.randint(low, high + 1, (), generator=g))
                                     for low, high in ((1, 3), (1, 3), (1, 9), (1, 9), (1, 4),
                                                       (1, 4)))
        if kh > h or kw > w or (len(cases) % 3 == 1 and kh == kw):
            continue  # the window must fit; a third of the cases have a non-square kernel
        cases.append({name: torch.randint(-3, 4, shape, generator=g).float()
                      for name, shape in (("x", (c_in, h, w)), ("weight", (c_out, c_in, kh, kw)),
                                          ("bias", (c_out,)))})
    return cases


# ATen's convolutions, whatever the backend: conv2d, convolution, _convolution, slow_conv2d, ...
LIBRARY_CONVOLUTION = re.compile(r"conv(olution|\d|_tbc|_transpose|_depthwise|_dilated)")
MAX_OUTPUT = 10_000  # numbers per returned tensor sent back


class Calls(TorchDispatchMode):
    """The ATen operators the student's function runs: a convolution of PyTorch is not by hand."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def probe_conv(ns: dict, secret: int) -> dict:
    """conv2d_by_hand on every case; the grader computes F.conv2d itself (judges.py)."""
    conv2d_by_hand = need(ns, "conv2d_by_hand")
    calls = Calls()
    outputs = []
    for case in conv_cases(secret):
        with calls:
            outputs.append(part(lambda c=case: _output(conv2d_by_hand(
                c["x"].clone(), c["weight"].clone(), c["bias"].clone()))))
    library = sorted(n for n in calls.names if LIBRARY_CONVOLUTION.search(n))
    return {"outputs": outputs, "library": library}


def _output(value) -> dict:
    if not isinstance(value, torch.Tensor):
        return {"type": type_name(value), "shape": None, "tensor": None}
    value = value.detach().cpu()
    small = value.numel() <= MAX_OUTPUT and not value.is_complex()
    return {"type": type_name(value), "shape": list(value.shape),
            "tensor": value.double() if small else None}


# ----------------------------------------------------------------------------- gap 2: size
# ----------------------------------------------------------------------------- gap 1: size

SIZE_CASES = 40
LESSON_LAYERS = [(28, 5, 1, 0), (24, 2, 2, 0), (8, 2, 2, 0), (6, 3, 1, 1), (28, 5, 2, 1)]


def size_cases(secret: int) -> list[tuple[int, int, int, int]]:
    """(size, kernel_size, stride, padding): the lesson's own layers, then cases drawn from the
    grading's secret (the jail gets it with the probe; the judge draws the same), each a window
    that fits: sides up to 64, kernels up to 7, strides up to 4, paddings up to 3."""
    g = torch.Generator().manual_seed(secret)
    cases = list(LESSON_LAYERS)
    while len(cases) < SIZE_CASES:
        size, kernel, stride, padding = (int(torch.randint(low, high + 1, (), generator=g))
                                         for low, high in ((1, 64), (1, 7), (1, 4), (0, 3)))
        if size + 2 * padding >= kernel:
            cases.append((size, kernel, stride, padding))
    return cases


def probe_size(ns: dict, secret: int) -> dict:
    """conv_output_size on every case, called as the lesson writes it; the grader knows the
    answers (judges.py), the jail only reports what came back."""
    conv_output_size = need(ns, "conv_output_size")
    values = [part(lambda c=case: describe(conv_output_size(c[0], c[1], stride=c[2],
                                                             padding=c[3])))
              for case in size_cases(secret)]
    return {"values": values, "defaults": part(lambda: describe(conv_output_size(28, 5)))}


def describe(value) -> dict:
    number = None
    try:
        number = float(value)
    except Exception:
        pass
    return {"type": type_name(value), "is_int": type(value) is int, "value": number,
            "repr": repr(value)[:80]}


def grader_conv_output_size(size: int, kernel_size: int, stride: int = 1,
                            padding: int = 0) -> int:
    """The grader's own answer to gap 2: MyCNN is built with it, and the judges compare with it."""
    return (size + 2 * padding - kernel_size) // stride + 1


# ----------------------------------------------------------------------------- gap 3: MyCNN

FIXED_BATCH = f"forward works for one batch size only: {hints.FLATTEN}"

# output_shape tries each accepted layout at the batch size of the checks; any_batch_size tries
# other batch sizes on the main layout (the one a convolution takes).
LAYOUT_SHAPES = {"(64, 1, 28, 28)": (64, 1, 28, 28), "(64, 28, 28)": (64, 28, 28)}
BATCH_SHAPES = {"(1, 1, 28, 28)": (1, 1, 28, 28), "(7, 1, 28, 28)": (7, 1, 28, 28)}

MODEL = model.ModelSpec(
    name="MyCNN", lesson=LESSON,
    layouts={"(B, 1, 28, 28)": (1, 28, 28), "(B, 28, 28)": (28, 28)},
    main="(B, 1, 28, 28)",
    shapes={**LAYOUT_SHAPES, **BATCH_SHAPES},
    fixed_batch=FIXED_BATCH,
    shape_fix=f"{hints.FLATTEN}, and end with a layer of 10 outputs",
    raise_hints=(("invalid for input of size", hints.FLATTEN),),
    layer_example="self.conv1 = nn.Conv2d(...)", diagnose=hints.diagnose)


def probe_model(ns: dict) -> dict:
    """The common model evidence of MyCNN built with the grader's conv_output_size; how it
    differs with the student's own; the layers its forward met, when it raised (for hints)."""
    with replaced(ns, "conv_output_size", grader_conv_output_size):
        data = model.probe(ns, MODEL)
        if not data["eager"]["ok"] or data.get("export_errors"):
            x = MODEL.images(fx.train_slice(0, fx.MODEL_BATCH)[0])
            data["trace"] = part(lambda: graph.trace(ns["MyCNN"]().eval(), x))
    data["own_sizes"] = part(lambda: own_sizes(ns))
    return data


def own_sizes(ns: dict) -> str | None:
    """How MyCNN() differs when it is built with the student's conv_output_size rather than the
    grader's: the first parameter whose shape changes, None when none does; raises what
    MyCNN() raises with it."""
    if not callable(ns.get("conv_output_size")):
        return None
    cls = ns["MyCNN"]
    try:
        with replaced(ns, "conv_output_size", grader_conv_output_size):
            theirs = {k: list(v.shape) for k, v in cls().state_dict().items()}
    except Exception:
        return None  # MyCNN() fails whatever the sizes: the model checks say why
    mine = {k: list(v.shape) for k, v in cls().state_dict().items()}  # may raise: the judge says
    for name, shape in theirs.items():
        if mine.get(name) != shape:
            got = "missing" if name not in mine else f"of shape {tuple(mine[name])}"
            return f"{name} is {got} instead of {tuple(shape)}"
    return None


def probe_model_eval(ns: dict, paths: dict, secret: int) -> dict:
    """The common model evidence, plus what the exported graph is made of and whether the
    program is affine (f(½a + ½b) = ½f(a) + ½f(b)): evidence read by a child that never ran
    student code."""
    modules = model.programs(paths, MODEL)
    main = model.main_program(modules, MODEL)
    data = model.gather(modules, main, MODEL)
    images = MODEL.images(fx.train_slice(0, 2 * fx.MODEL_BATCH)[0])
    data["graph"] = part(lambda: graph.describe(main, images[:fx.MODEL_BATCH]))
    data["affine"] = part(lambda: model.midpoint(main, images[:fx.MODEL_BATCH],
                                                 images[fx.MODEL_BATCH:]))
    data["bends"] = part(lambda: graph.bends(main, images[:fx.MODEL_BATCH],
                                             images[fx.MODEL_BATCH:]))
    return data


# ----------------------------------------------------------------------------- hidden

# One epoch in mini-batches of 64 (as long as batches of 128 on one CPU thread, and twice the
# steps for the designs that learn slowly, such as a global average pooling) on the first
# HIDDEN_IMAGES training images: the reference CNN trains in ~6 s of one core, where the whole
# training split took 33 s and a lesson-02 grading 45 s (benchmarks/bench_grader_cnn.py)
HIDDEN_EPOCHS, HIDDEN_BATCH, HIDDEN_IMAGES = 1, 64, 12_000


def train_with_lesson_fit(ns: dict, model, x, y, x_val, y_val, epochs: int,
                          batch_size: int) -> None:
    """The hidden check's training: the course's fit (shared/training.py), imported by the
    grader — the lesson imports it rather than asking for it again."""
    from shared.training import fit

    with replaced(ns, "conv_output_size", grader_conv_output_size):
        fit(model, x, y, x_val, y_val, epochs=epochs, batch_size=batch_size)


def a_cnn(program) -> str | None:
    """In the clean child, on the trained program: why it is not a CNN that bends its maps,
    whatever its accuracy (a fully connected network passes the bar after one epoch, and a
    linear classifier comes near it), or None."""
    images = fx.train_slice(0, 2 * fx.MODEL_BATCH)[0]
    if not graph.spatial(graph.describe(program, images[:8])["steps"]):
        return ("your trained MyCNN runs no convolution whose kernel sees neighbouring pixels: "
                "this check tests a convolutional network (see uses_convolutions)")
    out = model.midpoint(program, images[:fx.MODEL_BATCH], images[fx.MODEL_BATCH:])
    if close(out["mid"], (out["a"] + out["b"]) / 2, rel=graph.AFFINE):
        return ("your trained MyCNN is affine, a linear classifier: this check tests a network "
                "with non-linearities (see non_linear)")
    return None


HIDDEN = hidden.HiddenSpec(
    name="MyCNN", needs=("MyCNN",), train=train_with_lesson_fit,
    trainer="the lesson's fit", epochs=HIDDEN_EPOCHS, batch_size=HIDDEN_BATCH, lesson=LESSON,
    train_images=HIDDEN_IMAGES,
    layout=(28, 28), fixed_batch=FIXED_BATCH,
    unchanged="training changed none of your MyCNN's parameters: create the layers in "
              "__init__ as attributes (self.conv1 = nn.Conv2d(...)) and use them in forward, "
              "without .detach() or torch.no_grad()",
    too_weak="the network is too weak — use convolutions with a ReLU after each, poolings of "
             "2 that keep a few pixels per side, and a linear layer on the flattened maps "
             "(see the model checks)",
    requirement=a_cnn)


def probe_hidden(ns: dict) -> dict:
    with replaced(ns, "conv_output_size", grader_conv_output_size):
        return hidden.probe(ns, HIDDEN)


def probe_hidden_eval(ns: dict, paths: dict, secret: int) -> dict:
    return hidden.probe_eval(ns, paths, secret, HIDDEN)


PROBES = {"conv": probe_conv, "size": probe_size, "model": probe_model,
          "model_eval": probe_model_eval, "hidden": probe_hidden, "hidden_eval": probe_hidden_eval}
