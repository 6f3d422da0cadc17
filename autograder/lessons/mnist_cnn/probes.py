"""Probes for lesson 02: call the student's conv_output_size and MyCNN, return plain data.

They run in the sandbox child (or in a student's kernel for a self-check) and never judge.
The model and hidden probes are every lesson's (autograder/lessons/common/model.py, hidden.py),
bound here to MyCNN; the clean child adds what it reads from the exported graph (graph.py).
"""
from __future__ import annotations

import torch

from autograder.engine.probing import need, part, type_name
from autograder.lessons.common import fixtures as fx
from autograder.lessons.common import hidden, model
from autograder.lessons.mnist_cnn import graph

LESSON = "autograder.lessons.mnist_cnn"  # its LESSON holds the budget and the threshold

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


# ----------------------------------------------------------------------------- gap 2: MyCNN

FLATTEN = ("flatten the feature maps with x.flatten(1) (or x.reshape(len(x), -1)), never with "
           "a fixed batch size such as x.view(64, -1)")
FIXED_BATCH = f"forward works for one batch size only: {FLATTEN}"
CHANNEL = ("add the channel dimension when it is missing — if x.dim() == 3: x = x.unsqueeze(1) — "
           "so that (B, 28, 28) becomes (B, 1, 28, 28), the shape nn.Conv2d expects")
FLAT_SIZE = ("the first nn.Linear's in_features must be channels × side × side of the last "
             "feature maps: compute the side with conv_output_size, layer by layer from 28")

HINTS = (("channels, but got", CHANNEL), ("invalid for input of size", FLATTEN),
         ("cannot be multiplied", FLAT_SIZE), ("same reduction dim", FLAT_SIZE))

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
    shape_fix=f"{FLATTEN}, and end with a layer of 10 outputs",
    raise_hints=HINTS, export_hints=HINTS, eager_hints=HINTS,
    layer_example="self.conv1 = nn.Conv2d(...)")


def probe_model(ns: dict) -> dict:
    return model.probe(ns, MODEL)


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
    return data


# ----------------------------------------------------------------------------- hidden

HIDDEN_EPOCHS, HIDDEN_BATCH = 1, 128


def train_with_lesson_fit(ns: dict, model, x, y, x_val, y_val, epochs: int,
                          batch_size: int) -> None:
    """The hidden check's training: the course's fit (shared/training.py), imported by the
    grader — the lesson imports it rather than asking for it again."""
    from shared.training import fit

    fit(model, x, y, x_val, y_val, epochs=epochs, batch_size=batch_size)


HIDDEN = hidden.HiddenSpec(
    name="MyCNN", needs=("MyCNN",), train=train_with_lesson_fit,
    trainer="the lesson's fit", epochs=HIDDEN_EPOCHS, batch_size=HIDDEN_BATCH, lesson=LESSON,
    layout=(28, 28), fixed_batch=FIXED_BATCH,
    unchanged="training changed none of your MyCNN's parameters: create the layers in "
              "__init__ as attributes (self.conv1 = nn.Conv2d(...)) and use them in forward, "
              "without .detach() or torch.no_grad()",
    too_weak="the network is too weak — use convolutions with a ReLU after each, poolings of "
             "2 that keep a few pixels per side, and a linear layer on the flattened maps "
             "(see the model checks)")


def probe_hidden(ns: dict) -> dict:
    return hidden.probe(ns, HIDDEN)


def probe_hidden_eval(ns: dict, paths: dict, secret: int) -> dict:
    return hidden.probe_eval(ns, paths, secret, HIDDEN)


PROBES = {"size": probe_size, "model": probe_model, "model_eval": probe_model_eval,
          "hidden": probe_hidden, "hidden_eval": probe_hidden_eval}
