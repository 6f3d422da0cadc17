"""`make student`: the student's own copy of each lesson in work/, and JupyterLab opened on it.

    python -m autograder.frontends.student [JUPYTER LAB OPTIONS...]      # e.g. --no-browser --port 8899

- work/<lesson>.ipynb is copied from lessons/ only when it is missing: a student's answers are
  never overwritten (delete the file to start again from the lesson);
- the copy is not Jupytext-paired, so a save writes no .py and never touches lessons/;
- JupyterLab is rooted in work/ and opens the first lesson;
- nbgrader's instructor tools are hidden (student_jupyter/: its JupyterLab extension —
  Nbgrader menu, Create Assignment, Formgrader, Validate — and its server extensions). The
  check cells say which check failed, in about a second each; Validate re-ran the whole
  notebook and could not. The instructor's `jupyter lab` keeps them all.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

from autograder.authoring.course import LESSONS, REPO, lesson_path, student_copy

WORK = REPO / "work"
CONFIG = Path(__file__).resolve().parent / "student_jupyter"  # put first on JUPYTER_CONFIG_PATH


def prepare(work: Path = WORK, lessons=LESSONS) -> list[Path]:
    """Copy every lesson missing from `work`; return the copies made (none when all exist)."""
    work.mkdir(parents=True, exist_ok=True)
    made = []
    for lesson in lessons:
        target = work / f"{lesson}.ipynb"
        if target.exists():
            continue
        nb = student_copy(nbformat.read(lesson_path(lesson, ".ipynb"), as_version=4))
        nbformat.write(nb, target)
        made.append(target)
    return made


def lab_command(work: Path = WORK, extra=()) -> list[str]:
    """`jupyter lab` rooted in `work`, opening the first lesson (root may run it: CI, containers)."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={work}",
               f"--LabApp.default_url=/lab/tree/{LESSONS[0]}.ipynb"]
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
    print(f"JupyterLab opens {LESSONS[0]}.ipynb in {WORK.relative_to(REPO)}/ — Ctrl+C twice here stops it")
    command = lab_command(extra=argv)
    os.execvpe(command[0], command, lab_env())


if __name__ == "__main__":
    main()
