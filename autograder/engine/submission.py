"""Read a submission (.py in Jupytext percent format, or .ipynb) without running it.

Only what the lesson contract needs is kept: imports, functions, classes, simple constants
(`UPPER_CASE = ...` or `name = <literal>`) and a few cheap set-up calls (`device =
pick_device()`). Training, plotting and every other top-level call are dropped, so loading
takes milliseconds. Nothing here executes the student's code: the
kept statements are run later, in the sandbox's child process.

Reading is bounded. A file over MAX_BYTES or a notebook over MAX_CELLS cells is refused before
it is parsed, and the parsing itself (JSON, Python's ast: a few MB of bare constants once took
2.8 GB) happens in a child process of its own with at most PARSE_MEMORY_MB of memory and
PARSE_CPU_S of CPU: a file that needs more, or that parsing fails on (invalid JSON, a truncated
notebook), is unreadable (`Submission.unreadable`: not graded, never a zero, never a crash of
the grader). A cell that does not parse (a syntax error) is skipped and named in `problems`;
the rest is graded.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CELL_MARKER = re.compile(r"^# %%(?:\s|$)")  # "# %%", "# %% [markdown]"; not "# %%time"
CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
# `device = pick_device()`, `loss_fn = nn.CrossEntropyLoss()`: cheap set-up that functions often
# use as globals, so it is kept whatever the name's case
CHEAP_CALLS = {"pick_device", "device", "CrossEntropyLoss", "NLLLoss"}
MAX_BYTES = 32 * 2 ** 20   # a lesson notebook with its figures is a few MB
MAX_CELLS = 2000           # a lesson has about 50
PARSE_MEMORY_MB = 1024     # the parsing child's address space (a lesson's file needs ~100 MB)
PARSE_CPU_S = 20           # ... and its CPU (a lesson's file: ~0.1 s)
PARSE_WALL_S = 600         # past this, wall-clock, the machine (not the file) is to blame
# IPython's syntax, as Jupytext recognises it: %magic, %%cell magic, !shell, help?, x = !cmd
MAGIC = re.compile(r"^\s*(?:%{1,3}[A-Za-z]|[!?]\s*[A-Za-z.~$\\/{}]|[A-Za-z_]\w*\s*=\s*(?:%{1,3}|!)"
                   r"[A-Za-z]|\S*\?\s*$)")
PARSED = ("statements", "dropped", "problems", "cell_starts", "lesson_metadata",
          "lesson_imports", "unreadable")


class SubmissionError(Exception):
    """The file cannot be graded at all (missing, or not .py/.ipynb): the grader's exit code 2."""


@dataclass
class Statement:
    lineno: int              # first line in the (converted) source, 1-based
    source: str
    names: tuple[str, ...]   # names it defines


@dataclass
class Submission:
    path: Path
    sha256: str
    is_notebook: bool
    statements: list[Statement] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # name -> line of top-level code not run
    problems: list[str] = field(default_factory=list)      # cells skipped: syntax errors ...
    unreadable: str = ""   # why the whole file could not be read ("" when it could): not graded
    unavailable: str = ""  # why the grader could not read it now (the machine): graded again
    cell_starts: list[int] = field(default_factory=list)   # first line of each cell
    # which lesson the file says it is: notebook metadata {"autograder": {"lesson": ID}}, and
    # the X of each `from autograder.lessons.X import ...` (see autograder.lessons.detect)
    lesson_metadata: list[str] = field(default_factory=list)
    lesson_imports: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return str(self.path)

    def defined(self) -> set[str]:
        return {name for s in self.statements for name in s.names}

    def where(self, lineno: int) -> str:
        """'cell 4, line 2' (notebook) or 'line 57 (cell 4, line 2)' (.py)."""
        starts = [s for s in self.cell_starts if s <= lineno]
        if not starts:
            return f"line {lineno}"
        cell = f"cell {len(starts)}, line {lineno - starts[-1] + 1}"
        return cell if self.is_notebook else f"line {lineno} ({cell})"

    def plan(self) -> dict:
        """What the sandbox child needs to define the kept statements (plain JSON data)."""
        return {"filename": self.filename,
                "statements": [s.__dict__ for s in self.statements]}


def load(path) -> Submission:
    path = Path(path)
    if path.is_dir():
        raise SubmissionError(f"{path} is a folder: grade one .py or .ipynb file, or a whole "
                              f"class with `python -m autograder batch {path} --out grades.csv`")
    if not path.is_file():
        raise SubmissionError(f"no such file: {path}")
    if path.suffix not in (".py", ".ipynb"):
        raise SubmissionError(f"{path.name}: expected a .py (Jupytext percent) or .ipynb file")
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    sub = Submission(path, hashlib.sha256(data).hexdigest(), path.suffix == ".ipynb")
    if len(data) > MAX_BYTES:
        sub.unreadable = (f"{path.name} is over {MAX_BYTES // 2 ** 20} MB, so it was not read: "
                          f"clear the outputs (Kernel → Restart Kernel and Clear Outputs), "
                          f"save, and hand it in again")
        return sub
    parsed = parse_bounded(data, sub.is_notebook, str(path)) if os.name == "posix" else \
        parse(data, sub.is_notebook, str(path))  # no rlimits to bound a child by: in here
    for name in PARSED:
        setattr(sub, name, parsed[name])
    sub.statements = [Statement(s["lineno"], s["source"], tuple(s["names"]))
                      for s in parsed["statements"]]
    sub.unavailable = parsed.get("unavailable", "")
    return sub


def parse(data: bytes, is_notebook: bool, filename: str) -> dict:
    """What `load` keeps of a file's bytes, as plain data (the fields PARSED)."""
    sub = Submission(Path(filename), "", is_notebook)
    try:
        if is_notebook:
            text, starts = notebook_to_py(data, sub)
        else:
            text, starts = data.decode("utf-8"), None
        _parse(sub, text, starts)
    except Exception as error:  # a corrupt file is not graded (never a crash, never a zero)
        sub.statements.clear()
        sub.unreadable = (f"could not read {sub.path.name}: {type(error).__name__}: "
                          f"{str(error)[:300]}")
    out = {name: getattr(sub, name) for name in PARSED}
    out["statements"] = [statement.__dict__ for statement in sub.statements]
    return out


def parse_bounded(data: bytes, is_notebook: bool, filename: str) -> dict:
    """`parse` in a child process of its own, with bounded memory and CPU (see the module's
    docstring). It parses, never runs, the student's code."""
    name = Path(filename).name
    root = str(Path(__file__).resolve().parents[2])
    header = json.dumps({"notebook": is_notebook, "filename": filename}).encode()
    from autograder.engine.jail import oom_kills

    killed_before = oom_kills()
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD, root],
                              input=header + b"\n" + data, capture_output=True,
                              timeout=PARSE_WALL_S, cwd="/")
    except subprocess.TimeoutExpired:
        return {**parse(b"", False, filename), "unavailable":
                f"not graded: the grader could not read {name} within {PARSE_WALL_S} s (the "
                f"machine was too busy); it will be read again"}
    if done.returncode == 0:
        try:
            return json.loads(done.stdout)
        except ValueError:
            pass
    if done.returncode == -9 and oom_kills() > killed_before:  # the machine's, not the file's
        return {**parse(b"", False, filename), "unavailable":
                f"not graded: the machine ran out of memory while the grader read {name}; it "
                f"will be read again"}
    why = (f"parsing it needs more than {PARSE_CPU_S} s of CPU" if done.returncode in (-24, -9)
           else f"parsing it needs more than {PARSE_MEMORY_MB} MB of memory"
           if b"MemoryError" in done.stderr else
           f"the grader's parser failed ({done.stderr.decode(errors='replace')[-300:]})")
    return {**parse(b"", False, filename), "statements": [],
            "unreadable": f"could not read {name}: {why} — is a cell holding a huge expression?"}


# The parsing child: bounds itself first, then reads the header line and the file's bytes.
_CHILD = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({PARSE_MEMORY_MB} * 2 ** 20,) * 2)
resource.setrlimit(resource.RLIMIT_CPU, ({PARSE_CPU_S}, {PARSE_CPU_S} + 5))
sys.path.insert(0, sys.argv[1])
from autograder.engine.submission import parse
header, data = sys.stdin.buffer.read().split(b"\\n", 1)
header = json.loads(header)
sys.stdout.write(json.dumps(parse(data, header["notebook"], header["filename"])))
"""


def notebook_to_py(data: bytes, sub: Submission | None = None) -> tuple[str, list[int]]:
    """The notebook's cells as a percent script (as Jupytext writes it: a `# %%` line per cell,
    markdown commented out, IPython's %magic and !shell lines too), outputs left out: only the
    code is graded; and the first line of each cell (known here: a line of a cell that looks
    like a marker, `# %% ...` in markdown, starts no cell). The lesson its metadata names goes
    to `sub.lesson_metadata`."""
    if data.count(b'"cell_type"') > MAX_CELLS:  # before parsing: counting is cheap
        raise ValueError(f"more than the {MAX_CELLS} cells a notebook may have")
    raw = json.loads(data.decode("utf-8"))
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook (no list of cells)")
    if raw.get("nbformat") != 4:
        raise ValueError(f"a notebook of format {raw.get('nbformat')!r}, not 4: open it in a "
                         f"recent Jupyter and save it again")
    if len(cells) > MAX_CELLS:
        raise ValueError(f"{len(cells)} cells, more than the {MAX_CELLS} a notebook may have")
    if sub is not None:
        sub.lesson_metadata = _lesson_metadata(raw.get("metadata"))
    lines, starts = [], []
    for cell in cells:
        kind, source = _cell(cell)
        starts.append(len(lines) + 2)  # the line after its marker
        if kind == "code":
            lines += ["# %%"] + _escape_magics(source.splitlines())
        else:
            lines += [f"# %% [{kind}]"] + [f"# {line}".rstrip() for line in source.splitlines()]
        lines.append("")
    return "\n".join(lines), starts


def _escape_magics(lines: list[str]) -> list[str]:
    """A code cell's lines, IPython's own syntax commented out, as Jupytext writes them; a cell
    that is valid Python as it is stays as it is (a line such as `    % width)` continues an
    expression, it is no magic)."""
    if not any(MAGIC.match(line) for line in lines):
        return lines
    try:
        ast.parse("\n".join(lines))
        return lines
    except Exception:  # SyntaxError, and whatever else: its cell is judged by `_parse`
        return [f"# {line}" if MAGIC.match(line) else line for line in lines]


def _cell(cell) -> tuple[str, str]:
    """(kind, source) of a notebook cell, or ValueError for one that is malformed."""
    if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
        raise ValueError("a cell that is not a JSON object with a cell_type")
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise ValueError(f"a {cell['cell_type']} cell whose source is not text")
    return cell["cell_type"], source


def _lesson_metadata(metadata) -> list[str]:
    declared = metadata.get("autograder") if isinstance(metadata, dict) else None
    lesson = declared.get("lesson") if isinstance(declared, dict) else None
    return [lesson[:100]] if isinstance(lesson, str) else []


LESSON_PACKAGE = re.compile(r"^autograder\.lessons\.(\w+)$")


def _lesson_import(node: ast.stmt) -> str | None:
    """X for `from autograder.lessons.X import check` (how a check cell names its lesson)."""
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        match = LESSON_PACKAGE.match(node.module)
        if match and any(a.name == "check" for a in node.names):
            return match.group(1)
    return None


def _parse(sub: Submission, text: str, starts: list[int] | None = None) -> None:
    lines = text.splitlines()
    sub.cell_starts = cell_starts(lines) if starts is None else starts
    if len(sub.cell_starts) > MAX_CELLS:
        raise ValueError(f"{len(sub.cell_starts)} cells, more than the {MAX_CELLS} a file may "
                         f"have")
    bounds = sub.cell_starts + [len(lines) + 1]
    for start, end in zip(bounds, bounds[1:]):
        cell = "\n".join(lines[start - 1:end - 1])
        try:
            tree = ast.parse(cell)
        except SyntaxError as error:
            line = start + (error.lineno or 1) - 1
            sub.problems.append(f"syntax error at {sub.where(line)}: {error.msg} — this cell "
                                f"was skipped, so nothing it defines can be graded")
            continue
        except (RecursionError, MemoryError, ValueError) as error:  # too deep, too big, NUL
            sub.problems.append(f"{sub.where(start)}: the grader could not parse this cell "
                                f"({type(error).__name__}: an expression nested too deeply or "
                                f"too large?) — it was skipped, so nothing it defines can be "
                                f"graded")
            continue
        cell_lines = cell.split("\n")  # ast's lines: `lines` were joined with "\n" only
        for node in tree.body:
            _sort(sub, node, cell_lines, start)
            package = _lesson_import(node)
            if package and package not in sub.lesson_imports:
                sub.lesson_imports.append(package)


def cell_starts(lines: list[str]) -> list[int]:
    """First line of each cell: after each `# %%` marker, plus line 1 when code precedes it."""
    markers = [i + 1 for i, line in enumerate(lines) if CELL_MARKER.match(line)]
    first = markers[0] if markers else len(lines) + 1
    header_has_code = any(l.strip() and not l.lstrip().startswith("#") for l in lines[:first - 1])
    return ([1] if header_has_code or not markers else []) + [m + 1 for m in markers]


def _sort(sub: Submission, node: ast.stmt, lines: list[str], start: int) -> None:
    lineno = start + node.lineno - 1
    if keep(node):
        sub.statements.append(Statement(start + _first_line(node) - 1,
                                        _source(node, lines), defined_names(node)))
    else:
        for name in defined_names(node):
            sub.dropped.setdefault(name, lineno)


def keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return _is_constant(node)
    if isinstance(node, ast.Try):  # e.g. try: import seaborn / except ImportError: ...
        bodies = [node.body, node.orelse, node.finalbody] + [h.body for h in node.handlers]
        return all(keep(n) for body in bodies for n in body)
    return False


def _is_constant(node) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = [n for t in targets for n in _target_names(t)]
    if node.value is None or not names or len(names) != sum(map(_count_targets, targets)):
        return False
    if all(CONSTANT_NAME.match(n) for n in names) or _is_cheap_call(node.value):
        return True
    try:
        ast.literal_eval(node.value)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def _is_cheap_call(value) -> bool:
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in CHEAP_CALLS


def _target_names(target) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    return []


def _count_targets(target) -> int:
    if isinstance(target, (ast.Tuple, ast.List)):
        return sum(_count_targets(elt) for elt in target.elts)
    return 1


def defined_names(node: ast.stmt) -> tuple[str, ...]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return (node.name,)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return tuple((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
    names = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.append(child.id)
    return tuple(dict.fromkeys(names))


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([d.lineno for d in decorators] + [node.lineno])


def _source(node: ast.stmt, lines: list[str]) -> str:
    """The statement's source, decorators included, cut from the cell's lines (split once per
    cell: ast.get_source_segment splits the whole cell again for each statement)."""
    if getattr(node, "decorator_list", None):
        return "\n".join(lines[_first_line(node) - 1:node.end_lineno])
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:  # ast's columns count UTF-8 bytes
        return lines[first].encode()[node.col_offset:node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset:].decode()
    tail = lines[last].encode()[:node.end_col_offset].decode()
    return "\n".join([head, *lines[first + 1:last], tail])
