"""What a grader leaves on the machine is named after it, so that a later grader can clean it up.

A grader killed with SIGKILL (an instructor's kill -9, the OOM killer, a lost Dask worker) runs
no clean-up: its jails die with it (each has a parent-death signal and its own PID namespace),
but their cgroups and the private folders holding students' files stay. Each of them is named
after the process that made it, "<pid>.<start time>" (`OWNER`), and every grader sweeps, when it
starts, what belongs to graders that no longer run (`sweep`): a pid alone could have been reused,
the pair cannot. What a grader that still runs made is never touched.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "autograder-"
TAGGED = re.compile(r"^(\d+\.\d+)-")  # "<pid>.<start time>-...": a cgroup's name
FOLDER = re.compile(rf"^{PREFIX}(\d+\.\d+)-")  # "autograder-<pid>.<start time>-<purpose>-..."


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (None when it is not running)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def owner(pid: int | None = None) -> str:
    """This process's tag (or pid's): "<pid>.<start time>"."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{start_time(pid) or 0}"


def alive(tag: str) -> bool:
    """Whether the process that a tag names still runs (the same process, not a reused pid)."""
    pid, started = tag.split(".")
    return start_time(int(pid)) == int(started)


def stale(name: str, pattern=TAGGED) -> bool:
    """A tagged name whose owner no longer runs (an untagged name is never stale)."""
    match = pattern.match(name)
    return bool(match) and not alive(match.group(1))


def private_dir(purpose: str = "grading") -> Path:
    """A new folder of the grader's own (0700), named after it so that a later grader sweeps it
    if this one is killed before it removes it: autograder-<owner>-<purpose>-<random>."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner()}-{purpose}-"))


class PrivateDir:
    """`private_dir` as a context manager, removed on exit (as tempfile.TemporaryDirectory)."""

    def __init__(self, purpose: str = "grading"):
        self.path = private_dir(purpose)

    def __enter__(self) -> str:
        return str(self.path)

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def sweep_dirs(root=None) -> list[Path]:
    """Remove the private folders of graders that no longer run; return them."""
    root = Path(root or tempfile.gettempdir())
    try:
        found = [entry for entry in root.iterdir() if stale(entry.name, FOLDER)]
    except OSError:
        return []
    for entry in found:
        shutil.rmtree(entry, ignore_errors=True)
    return found
