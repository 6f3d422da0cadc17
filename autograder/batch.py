"""Grade a folder of submissions: one file or one folder per student → CSV + feedback files.

One broken submission never stops the batch: it gets a row with an error and 0 points.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from autograder import report as reports
from autograder.grading import grade
from autograder.submission import SubmissionError

SUFFIXES = (".ipynb", ".py")


def find_submissions(folder) -> dict[str, Path | None]:
    """student -> file: `alice.ipynb`, or `alice/` holding one notebook (else one .py)."""
    found = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix in SUFFIXES:
            found[entry.stem] = entry
        elif entry.is_dir():
            found[entry.name] = _pick(entry)
    return found


def _pick(folder: Path) -> Path | None:
    for suffix in SUFFIXES:
        files = sorted(p for p in folder.rglob(f"*{suffix}")
                       if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("."))
        if files:
            return files[0]
    return None


def grade_folder(folder, out, workers: int = 1, feedback=None, **options) -> list[dict]:
    """Grade every submission in `folder`; write the CSV `out` and one feedback file each."""
    submissions = find_submissions(folder)
    if not submissions:
        raise SubmissionError(f"no submissions (.py, .ipynb or folders) in {folder}")
    feedback = Path(feedback or Path(out).with_name(Path(out).stem + "-feedback"))
    feedback.mkdir(parents=True, exist_ok=True)
    lesson = options.get("lesson", "01_mnist_dnn")
    rows = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        jobs = {pool.submit(_grade_one, student, path, feedback, options): student
                for student, path in submissions.items()}
        for job in tqdm(as_completed(jobs), total=len(jobs), desc="grading", unit="student"):
            rows.append(job.result())
    reports.write_gradebook(rows, out, lesson)
    return rows


def _grade_one(student: str, path, feedback: Path, options: dict) -> dict:
    text_file = feedback / f"{student}.txt"
    try:
        if path is None:
            raise SubmissionError("no .ipynb or .py file in the student's folder")
        report = grade(path, **options)
    except Exception as error:  # any failure is this student's row, never the batch's end
        message = f"could not grade: {type(error).__name__}: {error}"
        text_file.write_text(f"{student}\n{message}\n")
        return reports.gradebook_row(student, error=message)
    text_file.write_text(reports.scorecard(report, student=True) + "\n")
    return reports.gradebook_row(student, report)
