"""MNIST for the grader: one tensor file per split, verified before use, read-only in the jails.

Parsing the IDX files costs ~2 s per process; loading a cached tensor file with `mmap=True`
costs milliseconds and shares its pages between children. The grader writes each split once,
next to the raw files it was made from (`<data dir>/MNIST/cache/`, never a shared folder of
/tmp), with its sha256 beside it; before handing a file to a jail it checks that sha256 (once
per process, and again whenever the file's inode, size or times change) and rebuilds a file
that fails. A jail gets only the splits it needs, bound read-only: the student's code sees the
training split, never the test split.

In a child, `mnist()` reads the files named by $AUTOGRADER_DATA (os.pathsep-separated);
in the grader, it prepares and verifies them first.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from autograder.engine.lesson import DATA_ENV as ENV_VAR  # noqa: E402  (the files given)
SPLITS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
_loaded = None
_verified: dict[Path, tuple] = {}  # path -> the stat fingerprint it was verified with


def cache_dir() -> Path:
    from shared import data

    return data.data_dir() / "MNIST" / "cache"


def split_files(splits=tuple(SPLITS)) -> dict[str, Path]:
    """{split: verified tensor file}: built from the verified raw files when missing or bad."""
    from shared import data

    data.ensure_mnist(log=lambda *_: None)
    stamp = (data.raw_dir() / data.STAMP).read_bytes()
    key = hashlib.sha256(stamp).hexdigest()[:16]
    files, loaded = {}, None
    for split in splits:
        path = cache_dir() / f"{split}-{key}.pt"
        if not verify(path):
            loaded = loaded or data.load_mnist()
            _write(path, dict(zip(SPLITS[split], loaded[list(SPLITS).index(split)])))
        files[split] = path
    return files


def verify(path: Path) -> bool:
    """True when `path` holds the bytes whose sha256 was recorded when it was written."""
    digest_file = path.with_suffix(".sha256")
    try:
        fingerprint = _fingerprint(path) + _fingerprint(digest_file)
    except OSError:
        return False
    if _verified.get(path) == fingerprint:
        return True
    if _sha256(path) != digest_file.read_text().strip():
        return False
    _verified[path] = fingerprint
    return True


def _fingerprint(path: Path) -> tuple:
    st = path.stat()  # a write changes ctime, which only the kernel sets
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _sha256(path: Path) -> str:
    from shared.data import sha256

    return sha256(path)


def _write(path: Path, tensors: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(tensors, partial)
    os.chmod(partial, 0o644)
    partial.with_suffix(".sha256tmp").write_text(_sha256(partial) + "\n")
    os.replace(partial.with_suffix(".sha256tmp"), path.with_suffix(".sha256"))
    os.replace(partial, path)  # atomic: a concurrent reader never sees half a file
    _verified.pop(path, None)


def mnist() -> dict:
    """{"x_train", "y_train"[, "x_test", "y_test"]}: float32 images in [0, 1], int64 labels.
    A jailed child has only the splits it was given."""
    global _loaded
    if _loaded is None:
        given = os.environ.get(ENV_VAR)
        paths = given.split(os.pathsep) if given else list(split_files().values())
        _loaded = {}
        for path in paths:
            _loaded.update(torch.load(path, mmap=True, weights_only=True))
    return _loaded


# What each kind of child is given: the student's code never sees the test split.
ROLES = {"student": ("train",), "clean": ("train", "test")}


def files_for(role: str) -> list[Path]:
    """The verified MNIST files a child of this role reads (the Lesson record's `data`)."""
    return list(split_files(ROLES[role]).values())
