"""`make student`: the student's own copy of each lesson in work/, and JupyterLab opened on it.

    python -m autograder.frontends.student [JUPYTER LAB OPTIONS...]      # e.g. --no-browser --port 8899

- work/<lesson>.ipynb is copied from lessons/ only when the student has no notebook of that
  lesson in work/: a student's answers are never overwritten (delete the file to start again
  from the lesson). A notebook renamed or duplicated in JupyterLab ("01_mnist_dnn-Copy1.ipynb",
  "my lesson 1.ipynb", in a subfolder too) is still the student's: its metadata and check cells
  name its lesson, as for the grader;
- the copy is not Jupytext-paired, so a save writes no .py and never touches lessons/;
- JupyterLab is rooted in work/ and opens the student's notebook of the first lesson (the one
  saved last, if there are several);
- nbgrader's instructor tools are hidden (student_jupyter/: its JupyterLab extension —
  Nbgrader menu, Create Assignment, Formgrader, Validate — and its server extensions). The
  check cells say which check failed, in about a second each; Validate re-ran the whole
  notebook and could not. The instructor's `jupyter lab` keeps them all.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

import nbformat

from autograder.authoring.course import LESSONS, REPO, lesson_path, student_copy

WORK = REPO / "work"
CONFIG = Path(__file__).resolve().parent / "student_jupyter"  # put first on JUPYTER_CONFIG_PATH


def prepare(work: Path = WORK, lessons=LESSONS) -> list[Path]:
    """Copy every lesson the student has no notebook of in `work`; return the copies made
    (none when all exist)."""
    work.mkdir(parents=True, exist_ok=True)
    made = []
    for lesson in lessons:
        if find(work, lesson) is not None:
            continue
        target = work / f"{lesson}.ipynb"
        nb = student_copy(nbformat.read(lesson_path(lesson, ".ipynb"), as_version=4))
        nbformat.write(nb, target)
        made.append(target)
    return made


def find(work: Path, lesson: str) -> Path | None:
    """The student's notebook of `lesson` in `work`: `<lesson>.ipynb` (whatever it holds: it is
    never overwritten) or any notebook, renamed or moved, that declares that lesson; the one
    saved last when there are several."""
    own = [path for path in _notebooks(work)
           if path == work / f"{lesson}.ipynb" or lesson_of(path) == lesson]
    return max(own, key=lambda path: path.stat().st_mtime_ns, default=None)


def _notebooks(work: Path) -> list[Path]:
    """The notebooks under `work`, JupyterLab's checkpoints and hidden folders left out."""
    return [path for path in work.rglob("*.ipynb")
            if not any(part.startswith(".") for part in path.relative_to(work).parts)]


def lesson_of(path: Path) -> str | None:
    """The lesson a notebook declares (its metadata, its check cells), as the grader reads it;
    None for a notebook of no lesson or a file that is not a notebook."""
    from autograder import lessons
    from autograder.engine import submission

    try:
        return lessons.detect(submission.load(path)).id
    except Exception:  # not a notebook, or one of no single lesson: not a lesson's copy
        return None


def lab_command(work: Path = WORK, extra=(), notebook: Path | None = None) -> list[str]:
    """`jupyter lab` rooted in `work`, opening `notebook` (the first lesson's by default); root
    may run it (CI, containers)."""
    notebook = notebook or work / f"{LESSONS[0]}.ipynb"
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={work}",
               f"--LabApp.default_url=/lab/tree/{quote(notebook.relative_to(work).as_posix())}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command + list(extra)


def lab_env(env=None) -> dict:
    """The environment for the student's JupyterLab: the student set-up's config comes first."""
    env = dict(os.environ if env is None else env)
    paths = [str(CONFIG)] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    env.pop("MPLBACKEND", None)  # make exports Agg; the kernel picks its inline backend itself
    return env


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    for path in prepare():
        print(f"your copy: {path.relative_to(REPO)} (yours to edit; lessons/ stays as it is)")
    notebook = find(WORK, LESSONS[0])
    print(f"JupyterLab opens {notebook.relative_to(WORK)} in {WORK.relative_to(REPO)}/ — "
          f"Ctrl+C twice here stops it")
    command = lab_command(extra=argv, notebook=notebook)
    os.execvpe(command[0], command, lab_env())


if __name__ == "__main__":
    main()
