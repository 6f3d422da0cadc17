"""Results already graded, kept beside the output, so that a re-run grades only what changed.

A student's result is reused when its key is unchanged: the key covers the sha256 of the file
graded, its name, the lesson, the limits and the grader's own source (any edit of `autograder/`
or `shared/` is a new grader, so everything is graded again). The cache is a JSON-lines file:
one line per graded submission, appended as soon as it is graded, so an interrupted batch
resumes where it stopped; the last line of a student wins.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

PACKAGES = ("autograder", "shared")  # the code a grade depends on


@functools.cache
def grader_version() -> str:
    """A digest of the grader's source: two machines grade alike when theirs are equal."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def key(data: bytes, **context) -> str:
    """What a result depends on: the bytes graded plus plain, JSON-able `context`."""
    described = {"sha256": hashlib.sha256(data).hexdigest(), "grader": grader_version(),
                 **context}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    """student -> {"key", "result", "graded_at"}, in a JSON-lines file."""

    def __init__(self, path):
        self.path = Path(path)
        self.entries = self._read()

    def _read(self) -> dict:
        entries = {}
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:  # a line cut short by an interrupted run is simply not there
                    entry = json.loads(line)
                    entries[entry["student"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue
        return entries

    def get(self, student: str, key: str):
        entry = self.entries.get(student)
        return entry["result"] if entry and entry.get("key") == key else None

    def add(self, student: str, key: str, result: dict) -> None:
        entry = {"student": student, "key": key, "graded_at": time.time(), "result": result}
        self.entries[student] = entry
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")

    def compact(self) -> None:
        """Rewrite the file with one line per student (the latest), atomically."""
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text("".join(json.dumps(e, default=str) + "\n"
                                   for e in self.entries.values()))
        os.replace(partial, self.path)
