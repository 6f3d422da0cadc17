"""Turn what went wrong (an error record from a probe or from the sandbox) into words a
student can act on: where it happened, the likely cause, the fix."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SANDBOX = {
    "Timeout": "too slow: {what} did not finish within {limit:.0f} s — is the network very "
               "large, or is there an endless loop?",
    "MemoryLimit": "used more than {limit:.0f} MB of memory while {what} — is a tensor or a "
                   "list growing without bound?",
    "Crash": "the process running your code crashed ({signal}) while {what}",
    "Exit": "your code ended the process (exit code {code}) while {what}: do not call "
            "os._exit(), sys.exit() or exit() in graded code",
    "Malformed": "the grader could not read the result of {what}",
    "Budget": "your submission used up the {limit:.0f} s of running time the grader gives one "
              "submission before {what} could finish (earlier steps were too slow)",
}
LOADING = "loading your file (imports, classes, functions)"


@dataclass
class Context:
    """What explanations need to know about the submission and the lesson."""
    gaps: dict = field(default_factory=dict)              # "MyModel" -> 1
    what: dict = field(default_factory=dict)              # probe -> "building MyModel ..."
    hints: dict = field(default_factory=dict)             # error regex -> its likely cause
    where: callable = lambda line: f"line {line}"
    dropped: dict = field(default_factory=dict)           # name -> line not run by the grader
    problems: list = field(default_factory=list)          # syntax errors, unreadable file
    define_errors: dict = field(default_factory=dict)     # name -> error while defining it
    memory_mb: int = 0                                    # the sandbox's memory limit

    def failure(self, error: dict, probe: str) -> str:
        """A whole probe failed: say what the grader was doing and why it stopped."""
        kind = error["type"]
        if kind in SANDBOX and error.get("origin") != "child":  # what the sandbox saw itself
            what = (LOADING if error.get("phase") == "loading" else self.what.get(probe, probe))
            return SANDBOX[kind].format_map(_Blank(error, what=what))
        if error.get("phase") == "loading":
            return f"the grader could not load your file: {self.error_text(error)}"
        return self.error_text(error)

    def error_text(self, error: dict) -> str:
        kind, message = error["type"], error.get("message", "")
        if kind == "MissingName":
            return self.missing(error["name"])
        if kind == "GraphRejected":  # the clean child's own words about the exported model
            return message
        if kind == "NotImplementedError":
            return self.not_filled(self.culprit(error) or "your code")
        if kind == "SystemExit":
            code = error.get("code", "")
            return (f"your code called sys.exit({code}) or exit(){self.at(error)}: remove it, "
                    f"the grader needs your functions to return")
        if kind == "MemoryError" or "can't allocate memory" in message:
            limit = f" than the {self.memory_mb} MB allowed" if self.memory_mb else ""
            return (f"ran out of memory{self.at(error)}: it needed more{limit} — is a tensor or "
                    f"a list growing without bound?")
        meaning, place = plain_words(message), self.place(error)
        if meaning:  # PyTorch's own words after the meaning, for a search
            text = f"{meaning} ({place + '; ' if place else ''}{kind}: {message})"
        else:
            text = f"{kind}: {message}{self.at(error)}"
        text += self.hint(message)
        name = error.get("name")
        if kind == "NameError" and name in self.dropped:
            text += (f" — `{name}` is set by top-level code the grader does not run "
                     f"({self.where(self.dropped[name])}); create it inside the function, or "
                     f"make it an UPPER_CASE constant")
        return text

    def hint(self, message: str) -> str:
        """The lesson's word on an error whose cause lies elsewhere than where it was raised
        (a float size from gap 1 breaks a layer built in gap 2)."""
        for pattern, text in self.hints.items():
            if re.search(pattern, message):
                return f" — {text}"
        return ""

    def missing(self, name: str) -> str:
        if name in self.define_errors:
            error = self.define_errors[name]
            if error["type"] == "NotImplementedError":
                return self.not_filled(name)
            return f"{name} could not be defined: {self.error_text(error)}"
        if name in self.dropped:
            return (f"{name} is created by top-level code the grader does not run "
                    f"({self.where(self.dropped[name])}): define it with `class` / `def`")
        if self.problems:
            return f"{name} is not defined ({self.problems[0]})"
        return f"{name} is not defined: your submission must define {name}"

    def not_filled(self, name: str) -> str:
        gap = self.gaps.get(name)
        which = f"gap {gap}" if gap else "a gap"
        return (f"{which} is not filled yet: {name} still raises NotImplementedError — "
                f"replace the `raise NotImplementedError(...)` line with your code")

    def culprit(self, error: dict) -> str | None:
        """The top-level name (class or function) of the innermost student frame."""
        frames = error.get("frames") or []
        return frames[-1]["function"].split(".")[0] if frames else None

    def at(self, error: dict) -> str:
        place = self.place(error)
        return f" ({place})" if place else ""

    def place(self, error: dict) -> str:
        """"at line 32, in MyModel.forward": the innermost student frame, or ""."""
        frames = error.get("frames") or []
        if not frames:
            return ""
        frame = frames[-1]
        return f"at {self.where(frame['line'])}, in {frame['function']}"


# PyTorch's words for a matrix product whose sizes do not fit, eagerly and under torch.export:
# "mat1 and mat2 shapes cannot be multiplied (1792x28 and 784x128)",
# "a and b must have same reduction dim, but got [28*s0, 28] X [784, 128]"
MATMUL = (re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\S+)x(\S+) and (\d+)x(\d+)\)"),
          re.compile(r"same reduction dim, but got \[(.+?), ([^\]]+)\] X \[(\d+), (\d+)\]"))


def plain_words(message: str) -> str | None:
    """What a PyTorch shape error means, in a student's words ("an nn.Linear(784, 128) received
    inputs of 28 values ..."); None for any other error. The lesson adds the fix (its hints)."""
    for pattern in MATMUL:
        found = pattern.search(message)
        if found:
            got, takes, out = found.group(2), found.group(3), found.group(4)
            return (f"an nn.Linear({takes}, {out}) (or another matrix product) received inputs "
                    f"of {got} values in their last dimension, where it takes {takes}")
    return None


class _Blank(dict):
    """format_map() values, with "?" for any a record lacks."""

    def __missing__(self, key):
        return "?"
