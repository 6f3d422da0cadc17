"""Figures for the lessons: digits, training curves, confusion matrix, doubts, model summary,
convolution filters and feature maps.

Each plot returns its matplotlib Figure; with ``save_as="name"`` it also writes
``run_dir() / "name.png"``: ``runs/<date-time>/`` in the working directory (a notebook's own
folder in Jupyter, so JupyterLab's file browser shows it), or ``$MNIST_RUN_DIR``. Inputs may be
torch tensors or numpy arrays. Nothing here chooses a backend: Jupyter keeps its inline one,
and without a display matplotlib falls back to Agg.
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

MAX_IMAGES = 500  # a grid of 60,000 subplots would hang the kernel
LABEL_SIZE = 12  # points: a caption stays legible when JupyterLab shrinks a wide figure
_run_dir: Path | None = None


# --- where figures go ---------------------------------------------------------------------

def run_dir(path=None) -> Path:
    """Get (or, given ``path``, set) the folder where figures are saved; it is created."""
    global _run_dir
    if path is not None:
        _run_dir = Path(path).expanduser()
    folder = _run_dir or os.environ.get("MNIST_RUN_DIR") or _default_run_dir()
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@functools.cache  # one folder per process
def _default_run_dir() -> Path:
    """runs/<date-time> in the working directory: beside the notebook in Jupyter (the student's
    JupyterLab shows only its own folder, work/), the repository for `make run`."""
    return Path.cwd().resolve() / "runs" / time.strftime("%Y%m%d-%H%M%S")


def _finish(fig, save_as):
    if save_as:
        name = str(save_as) if str(save_as).endswith(".png") else f"{save_as}.png"
        fig.savefig(run_dir() / name, dpi=100)
    return fig


# --- inputs: tensors or arrays -------------------------------------------------------------

def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _as_images(x) -> np.ndarray:
    """(N, 28, 28), (N, 1, 28, 28) or (N, 784) -> (N, 28, 28)."""
    x = _numpy(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:
        side = math.isqrt(x.shape[1])
        x = x.reshape(len(x), side, side)
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, 28, 28), (N, 1, 28, 28) or (N, 784), "
                         f"got {tuple(x.shape)}")
    return x


def _labels(y) -> np.ndarray:
    """Class labels (N,); scores or one-hot rows (N, C) become their argmax."""
    y = _numpy(y)
    return (y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1)).astype(np.int64)


def _indices(indices, n: int) -> list[int]:
    idx = np.arange(n) if indices is None else _numpy(indices).reshape(-1)
    if idx.dtype == bool:  # a mask such as y_pred != y
        idx = np.flatnonzero(idx)
    if not 0 < len(idx) <= MAX_IMAGES:
        raise ValueError(f"plot_images shows 1 to {MAX_IMAGES} images, got {len(idx)}: "
                         f"pass indices, e.g. indices=range(36)")
    return [int(i) for i in idx]


# --- images ---------------------------------------------------------------------------------

def plot_images(x, y, indices=None, y_pred=None, columns=12, figsize=None, colorbar=False,
                cmap="binary", save_as=None):
    """A grid of images, the label under each; a wrong prediction reads "pred (true)" in red."""
    x, indices = _as_images(x), _indices(indices, len(x))
    y, y_pred = (None if v is None else _labels(v) for v in (y, y_pred))
    cols = min(columns, len(indices))
    rows = math.ceil(len(indices) / cols)
    size = 4.0 if len(indices) == 1 else 1.2
    width = size * cols * (1.3 if colorbar else 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=figsize or (width, size * 1.2 * rows),
                             squeeze=False, layout="constrained")
    for ax, i in zip(axes.flat, indices):
        image = ax.imshow(x[i], cmap=cmap)
        ax.set_xticks([])
        ax.set_yticks([])
        text, color = _caption(i, y, y_pred)
        ax.set_xlabel(text, color=color, fontsize=LABEL_SIZE)
        if color == "red":
            plt.setp(list(ax.spines.values()), color="red")
        if colorbar:
            fig.colorbar(image, ax=ax)
    for ax in axes.flat[len(indices):]:
        ax.remove()
    return _finish(fig, save_as)


def _caption(i, y, y_pred) -> tuple[str, str]:
    """(text, color) under image i."""
    if y is None or y_pred is None:
        known = y if y_pred is None else y_pred
        return ("" if known is None else str(known[i])), "black"
    if y_pred[i] == y[i]:
        return str(y[i]), "black"
    return f"{y_pred[i]} ({y[i]})", "red"


# --- training curves -----------------------------------------------------------------------

CHANCE_LOSS = math.log(10)  # cross-entropy of a model that gives each of 10 digits 1/10


def plot_history(history, held_out="validation", save_as=None):
    """Loss and accuracy per epoch, training vs held-out data, side by side.

    ``held_out`` names the data the ``val_`` curves were measured on ("test" in lesson 01).
    The y axes show plain values (no offset such as "1e-5 + 2.293", which makes a flat curve
    look like it falls). ln 10, the loss of a model that guesses, is a dashed line when a loss
    comes near it, a note otherwise: a line at 2.30 would squash curves that end near 0.05
    flat at the bottom. A dotted line marks the epoch of the lowest held-out loss, when the
    loss rose after it (overfitting).
    """
    data = dict(history)  # a History or a plain {"loss": [...], ...}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", held_out)):
            values = list(data.get(key, []))
            marker = "o" if len(values) <= 30 else None
            if values:
                ax.plot(range(1, len(values) + 1), values, marker=marker, label=label)
        if metric == "loss":
            _guessing(ax, [v for key in ("loss", "val_loss") for v in data.get(key, [])])
            _lowest(ax, list(data.get("val_loss", [])), held_out)
        ax.set(title=metric.capitalize(), xlabel="Epoch", ylabel=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    return _finish(fig, save_as)


def _guessing(ax, losses) -> None:
    """ln 10 as a dashed line when the losses reach half of it; else only in the legend, with
    the axis starting at 0."""
    style = {"color": "gray", "linestyle": "--", "linewidth": 1}
    if max(losses, default=CHANCE_LOSS) >= CHANCE_LOSS / 2:
        ax.axhline(CHANCE_LOSS, label="ln 10 = guessing", **style)
        return
    ax.set_ylim(bottom=0)
    ax.plot([], [], label=f"ln 10 = guessing ({CHANCE_LOSS:.2f}, far above)", **style)


def _lowest(ax, val_losses, held_out: str) -> None:
    """A dotted line at the epoch of the lowest held-out loss, if it rose afterwards."""
    if len(val_losses) < 3:
        return
    best = int(np.argmin(val_losses))
    if best < len(val_losses) - 1:
        ax.axvline(best + 1, color="gray", linestyle=":", linewidth=1.5,
                   label=f"lowest {held_out} loss")


# --- confusion matrix ----------------------------------------------------------------------

def confusion_matrix(y_true, y_pred, num_classes=10, normalize=False) -> np.ndarray:
    """``m[i, j]`` = how many digits of class i were predicted j; normalize: rows sum to 1."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    counts = np.bincount(num_classes * t + p, minlength=num_classes**2)
    counts = counts.reshape(num_classes, num_classes)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def plot_confusion_matrix(y_true, y_pred, normalize=False, save_as=None):
    """True class down, predicted class across; counts, or fractions of each row.

    The diagonal (right answers) is grey; the errors have a colour scale of their own, so
    that 3 mistakes stand out beside 1,000 right answers instead of vanishing in the pale end
    of one scale. Each non-zero cell shows its number.
    """
    m = confusion_matrix(y_true, y_pred, normalize=normalize)
    errors = np.ma.masked_where(np.eye(len(m), dtype=bool) | (m == 0), m)
    top = float(errors.max()) if errors.count() else 1.0  # the most frequent error
    fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
    ax.imshow(np.where(np.eye(len(m)), 1.0, np.nan), cmap="Greys", vmin=0, vmax=5)
    shown = ax.imshow(errors, cmap="Reds", vmin=0, vmax=top)
    fig.colorbar(shown, ax=ax, label="errors" + (" (share of the row)" if normalize else ""))
    title = ("Confusion matrix" + (" (normalised by true class)" if normalize else "")
             + "\nright answers on the grey diagonal, errors in red")
    ax.set(title=title, xlabel="Predicted", ylabel="True",
           xticks=range(len(m)), yticks=range(len(m)))
    for (i, j), value in np.ndenumerate(m):
        if value > 0:  # blank cells keep the errors readable
            dark = i != j and value > 0.6 * top
            ax.text(j, i, f"{value:.2g}" if normalize else str(value), ha="center",
                    va="center", fontsize=9, color="white" if dark else "black")
    return _finish(fig, save_as)


# --- doubts: the digits the model is least sure about --------------------------------------

def least_confident(probs, n=8) -> np.ndarray:
    """Indices of the n rows whose highest probability is lowest, least confident first."""
    return np.argsort(_probabilities(probs).max(axis=1), kind="stable")[:n]


def _probabilities(probs) -> np.ndarray:
    p = _numpy(probs).astype(np.float64)
    if p.ndim != 2 or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be class probabilities of shape (N, 10), rows summing "
                         "to 1: pass torch.softmax(logits, dim=1), not the logits")
    return p


def plot_doubts(x, probs, y_true, n=8, save_as=None):
    """The n least confident digits, each beside its bar chart of class probabilities."""
    x, p, y_true = _as_images(x), _probabilities(probs), _labels(y_true)
    chosen = least_confident(p, n)
    cols = min(len(chosen), 4)
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(3.4 * cols, 2.3 * rows + 0.4),
                             width_ratios=[1, 1.6] * cols, squeeze=False, layout="constrained")
    pairs = axes.reshape(-1, 2)  # (image axes, bars axes) side by side
    for (image_ax, bars_ax), i in zip(pairs, chosen):
        _show_doubt(image_ax, bars_ax, x[i], p[i], int(y_true[i]))
        image_ax.set_xlabel(f"#{i}", fontsize=LABEL_SIZE - 2)  # where to find it in x
    for ax in pairs[len(chosen):].flat:
        ax.remove()
    fig.suptitle("Least confident digits: pred (true) in red when wrong; true class bar green")
    return _finish(fig, save_as)


def _show_doubt(image_ax, bars_ax, image, p, true: int):
    pred = int(p.argmax())
    image_ax.imshow(image, cmap="binary")
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    text, color = _caption(0, [true], [pred])
    image_ax.set_title(text, color=color, fontsize=LABEL_SIZE + 2)
    colors = ["tab:gray"] * len(p)
    colors[pred] = "tab:red"
    colors[true] = "tab:green"  # the true class wins when the prediction is right
    bars_ax.bar(range(len(p)), p, color=colors)
    bars_ax.set(ylim=(0, 1), xticks=range(len(p)), yticks=(0, 0.5, 1))
    bars_ax.tick_params(labelsize=LABEL_SIZE - 2)


# --- model summary ---------------------------------------------------------------------------

class LayerRow(NamedTuple):
    name: str
    type: str
    output_shape: str
    params: int


@dataclass
class ModelSummary:
    """One row per layer, in the order the forward pass calls them, and parameter totals."""
    rows: list[LayerRow]
    total_params: int
    trainable_params: int

    def __str__(self) -> str:
        header = LayerRow("Layer", "Type", "Output shape", "Params")
        cells = [header] + [row._replace(params=f"{row.params:,}") for row in self.rows]
        widths = [max(len(str(row[c])) for row in cells) for c in range(4)]
        lines = ["  ".join([*(str(r[c]).ljust(widths[c]) for c in range(3)),
                            str(r[3]).rjust(widths[3])]) for r in cells]
        rule = "-" * len(lines[0])
        frozen = self.total_params - self.trainable_params
        return "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Total params: {self.total_params:,}",
                          f"Trainable params: {self.trainable_params:,}",
                          f"Non-trainable params: {frozen:,}"])

    __repr__ = __str__  # so a notebook cell ending in model_summary(model) shows the table


def model_summary(model: torch.nn.Module, input_shape=(1, 28, 28)) -> ModelSummary:
    """Pass one dummy input of ``input_shape`` (no batch dim) through the model, layer by layer."""
    layers = {name or type(m).__name__: m for name, m in model.named_modules()
              if _is_leaf(m) or _has_own_params(m)}
    shapes: dict[str, str] = {}
    hooks = [m.register_forward_hook(_record_shape(shapes, name)) for name, m in layers.items()]
    modes = {m: m.training for m in model.modules()}
    first = next(model.parameters(), None)
    dummy = torch.zeros(1, *input_shape, device="cpu" if first is None else first.device)
    try:
        model.eval()
        with torch.no_grad():
            model(dummy)
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
    order = list(shapes) + [name for name in layers if name not in shapes]
    rows = [LayerRow(name, type(layers[name]).__name__, shapes.get(name, "-"),
                     sum(p.numel() for p in layers[name].parameters(recurse=False)))
            for name in order]
    params = list(model.parameters())  # after the forward pass, so lazy layers count
    return ModelSummary(rows, sum(p.numel() for p in params),
                        sum(p.numel() for p in params if p.requires_grad))


def _is_leaf(module) -> bool:
    return next(module.children(), None) is None


def _has_own_params(module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _record_shape(shapes: dict, name: str):
    def hook(module, inputs, output):
        shapes.setdefault(name, _shape(output))
    return hook


def _shape(output) -> str:
    """(B, 100) for a tensor whose first dimension is the batch."""
    if isinstance(output, torch.Tensor):
        dims = ["B", *map(str, output.shape[1:])] if output.dim() else []
        return f"({', '.join(dims)})"
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape(o) for o in output)
    return type(output).__name__


# --- convolutions: what the kernels are, what they see -------------------------------------

def _signed(ax, image, title=None):
    """``image`` in red (positive) and blue (negative), white at zero, ticks off."""
    limit = float(np.abs(image).max()) or 1.0  # an all-zero map stays white
    ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_filters(weight, columns=8, save_as=None):
    """The kernels of a convolution with one input channel, one small image each.

    ``weight`` is the layer's weight, (out_channels, 1, k, k) (``model.conv1.weight``), or
    (out_channels, k, k). Red is a positive weight, blue a negative one, white zero; each
    kernel has its own colour scale.
    """
    w = _numpy(weight)
    if w.ndim == 4 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 3:
        raise ValueError(f"plot_filters shows the kernels of a convolution with one input "
                         f"channel, shaped (out, 1, k, k); got {tuple(w.shape)}: pass the first "
                         f"layer's weight, e.g. model.conv1.weight")
    cols = min(columns, len(w))
    rows = math.ceil(len(w) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.35 * rows + 0.4),
                             squeeze=False, layout="constrained")
    for ax, (i, kernel) in zip(axes.flat, enumerate(w)):
        _signed(ax, kernel, title=str(i))
    for ax in axes.flat[len(w):]:
        ax.remove()
    fig.suptitle(f"{len(w)} kernels of {w.shape[1]} × {w.shape[2]} (red > 0 > blue)")
    return _finish(fig, save_as)


def _one_image(image) -> np.ndarray:
    """(28, 28), (1, 28, 28) or (784,) -> (28, 28)."""
    return _as_images(_numpy(image).reshape(1, -1))[0]


def feature_maps(model, image, layers) -> dict[str, np.ndarray]:
    """{layer name: its output (channels, height, width)} for one image through ``model``.

    Forward hooks on the named submodules record their first output; the model runs once, in
    eval mode without gradients, and is left in the mode it was in.
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"no layer named {missing} in the model; its layers are "
                         f"{[name for name in modules if name]}")
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs.setdefault(name, output.detach())  # returns None: the output is unchanged
        return hook

    hooks = [modules[name].register_forward_hook(keep(name)) for name in layers]
    first = next(model.parameters(), None)
    x = torch.as_tensor(_one_image(image), dtype=torch.float32)[None, None]  # (1, 1, 28, 28)
    if first is not None:
        x = x.to(first)  # the model's device and dtype
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return {name: _numpy(outputs[name][0]) for name in layers}


def plot_feature_maps(model, image, layers, max_channels=16, columns=8, save_as=None):
    """One image, then each named layer's output maps for it, one small image per channel.

    ``layers`` names submodules of ``model`` (``["conv1", "conv2"]``); a layer called twice
    in ``forward`` shows its first call. At most ``max_channels`` maps per layer.
    """
    maps = feature_maps(model, image, layers)
    rows_of = {name: math.ceil(min(len(m), max_channels) / columns) for name, m in maps.items()}
    rows = 1 + sum(rows_of.values())
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.3 * rows),
                             squeeze=False, layout="constrained")
    axes[0, 0].imshow(_one_image(image), cmap="binary")
    axes[0, 0].set(xticks=[], yticks=[], title="input")
    for ax in axes[0, 1:]:
        ax.remove()
    row = 1
    for name, m in maps.items():
        block = axes[row:row + rows_of[name]].flat
        shown = m[:max_channels]
        for ax, (c, channel) in zip(block, enumerate(shown)):
            _signed(ax, channel, title=str(c))
        axes[row, 0].set_ylabel(f"{name}\n{' × '.join(map(str, m.shape))}", fontsize=8)
        for ax in list(axes[row:row + rows_of[name]].flat)[len(shown):]:
            ax.remove()
        row += rows_of[name]
    return _finish(fig, save_as)
