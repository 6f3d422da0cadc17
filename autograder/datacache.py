"""MNIST for the grader: `shared.data.load_mnist()` once, then a memory-mapped tensor file.

Every sandbox child needs the images; parsing the IDX files costs ~2 s per process, loading the
cached tensors with `mmap=True` costs milliseconds and shares the pages between children.
The cache is keyed by the verified raw files' stamp, so new data means a new cache file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

ENV_VAR = "AUTOGRADER_MNIST_CACHE"
_loaded = None


def cache_path() -> Path:
    """Where the tensors are cached; creates the file on first use."""
    given = os.environ.get(ENV_VAR)
    if given and Path(given).is_file():
        return Path(given)
    from shared import data

    data.ensure_mnist(log=lambda *_: None)
    stamp = (data.raw_dir() / data.STAMP).read_bytes()
    key = hashlib.sha256(stamp + str(data.raw_dir()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mnist-course-{os.getuid()}" / f"mnist-{key}.pt"
    if not path.is_file():
        _write(path, data.load_mnist())
    return path


def _write(path: Path, splits) -> None:
    (x_train, y_train), (x_test, y_test) = splits
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
               partial)
    os.replace(partial, path)  # atomic: a concurrent reader never sees half a file


def mnist() -> dict:
    """{"x_train", "y_train", "x_test", "y_test"}: float32 images in [0, 1], int64 labels."""
    global _loaded
    if _loaded is None:
        _loaded = torch.load(cache_path(), mmap=True, weights_only=True)
    return _loaded
