"""Helpers shared by every probe, in the sandbox child and in a student's live kernel.

A probe is a function `(namespace, **args) -> plain data` (dicts, lists, numbers, tensors).
It never decides a score; the judges do that in the grader's own process.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
import sysconfig
import time

import torch

# Set by the sandbox worker to the submission's file name; None means "a live notebook": every
# frame outside the standard library, site-packages, `autograder` and `shared` is the student's.
STUDENT_FILE: str | None = None
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_NOT_STUDENT = tuple({os.path.join(_REPO, "autograder"), os.path.join(_REPO, "shared"),
                      sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"],
                      sysconfig.get_paths()["purelib"], "<frozen"})


class MissingName(Exception):
    def __init__(self, name: str):
        super().__init__(f"{name} is not defined")
        self.name = name


def need(ns: dict, *names: str):
    """The submission's objects, or MissingName for the first that is absent."""
    for name in names:
        if name not in ns:
            raise MissingName(name)
    return ns[names[0]] if len(names) == 1 else tuple(ns[n] for n in names)


def is_student(filename: str) -> bool:
    if STUDENT_FILE is not None:
        return filename == STUDENT_FILE
    return not filename.startswith(_NOT_STUDENT)


def describe(error: BaseException) -> dict:
    """An exception as plain data: type, message, and the student's frames (innermost last)."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if is_student(code.co_filename):
            frames.append({"line": tb.tb_lineno,
                           "function": getattr(code, "co_qualname", code.co_name)})
        tb = tb.tb_next
    record = {"type": type(error).__name__, "message": str(error)[:600], "frames": frames[-6:]}
    if isinstance(error, (MissingName, NameError)):
        record["name"] = getattr(error, "name", None)
    if isinstance(error, SystemExit):
        record["code"] = repr(error.code)
    return record


def part(fn):
    """Run one part of a probe; its failure is recorded, the other parts still run."""
    try:
        return {"ok": True, "value": fn()}
    except (Exception, SystemExit) as error:
        return {"ok": False, "error": describe(error)}


def run_probe(probe, ns: dict, seed: int = 0, args: dict | None = None) -> dict:
    """{"ok": True, "data": ..., "seconds": s} or {"ok": False, "error": {...}, "seconds": s}.
    `args` are the probe's keyword arguments, if it takes any."""
    start = time.perf_counter()
    try:
        with seeded(seed):
            outcome = {"ok": True, "data": probe(ns, **(args or {}))}
    except (Exception, SystemExit) as error:
        outcome = {"ok": False, "error": describe(error)}
    outcome["seconds"] = time.perf_counter() - start
    return outcome


@contextlib.contextmanager
def seeded(seed: int):
    """Fixed seeds inside; the caller's random state is restored afterwards (live notebooks)."""
    state = torch.get_rng_state(), random.getstate()
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    np_state = numpy.random.get_state() if numpy else None
    if numpy:
        numpy.random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        random.setstate(state[1])
        if numpy:
            numpy.random.set_state(np_state)


@contextlib.contextmanager
def replaced(ns: dict, name: str, value):
    """Temporarily bind `name` in the submission's namespace (e.g. the reference accuracy)."""
    missing = object()
    old = ns.get(name, missing)
    ns[name] = value
    try:
        yield
    finally:
        if old is missing:
            ns.pop(name, None)
        else:
            ns[name] = old


def type_name(value) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
