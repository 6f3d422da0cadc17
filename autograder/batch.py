"""Grade a folder of submissions: one file or one folder per student → CSV + feedback files.

One broken submission never stops the batch: it gets a row with an error and 0 points.
A student with several files (`dave.ipynb` and `dave.py`) gets one graded, the notebook first,
and a note saying which, in the batch output and in their feedback.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from autograder import report as reports
from autograder.grading import grade
from autograder.submission import SubmissionError

SUFFIXES = (".ipynb", ".py")  # preference order: what students hand in from Jupyter first


def find_submissions(folder, ignore=()) -> dict[str, list[Path]]:
    """student -> candidate files, best first: `alice.ipynb` / `alice.py`, or files under
    `alice/`. Notebooks before .py files, then the shallowest, then by name."""
    ignore = {Path(p).resolve() for p in ignore}
    found: dict[str, list[Path]] = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith((".", "_")) or entry.resolve() in ignore:
            continue
        if entry.is_file() and entry.suffix in SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
        elif entry.is_dir():
            found.setdefault(entry.name, []).extend(_files(entry))
    return {student: sorted(files, key=_preference) for student, files in found.items()}


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file()
            and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts)]


def _preference(path: Path):
    return SUFFIXES.index(path.suffix), len(path.parts), str(path)


def choose(files: list[Path], folder) -> tuple[Path | None, str]:
    """The file to grade and, when there was a choice, a note naming it and the ones left."""
    if len(files) < 2:
        return (files[0] if files else None), ""
    best, *others = [p.relative_to(folder).as_posix() for p in files]
    return files[0], (f"graded {best}, ignored {', '.join(others)} (one file per student: "
                      f"a notebook before a .py, then the first by name)")


def grade_folder(folder, out, workers: int = 1, feedback=None, **options) -> list[dict]:
    """Grade every submission in `folder`; write the CSV `out` and one feedback file each.
    Each row may carry a "note" (which file was graded) that the CSV leaves out."""
    feedback = Path(feedback or Path(out).with_name(Path(out).stem + "-feedback"))
    submissions = find_submissions(folder, ignore=[feedback])
    if not submissions:
        raise SubmissionError(f"no submissions (.py, .ipynb or folders) in {folder}")
    feedback.mkdir(parents=True, exist_ok=True)
    lesson = options.get("lesson", "01_mnist_dnn")
    rows = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        jobs = [pool.submit(_grade_one, student, *choose(files, folder), feedback, options)
                for student, files in submissions.items()]
        for job in tqdm(as_completed(jobs), total=len(jobs), desc="grading", unit="student"):
            rows.append(job.result())
    reports.write_gradebook(rows, out, lesson)
    return sorted(rows, key=lambda row: row["student"])


def _grade_one(student: str, path, note: str, feedback: Path, options: dict) -> dict:
    text_file = feedback / f"{student}.txt"
    try:
        if path is None:
            raise SubmissionError("no .ipynb or .py file in the student's folder")
        report = grade(path, **options)
    except Exception as error:  # any failure is this student's row, never the batch's end
        message = f"could not grade: {type(error).__name__}: {error}"
        lines = [student] + ([f"note: {note}"] if note else []) + [message]
        text_file.write_text("\n".join(lines) + "\n")
        return {**reports.gradebook_row(student, error=message), "note": note}
    if note:
        report.notes.insert(0, note)
    text_file.write_text(reports.scorecard(report, student=True) + "\n")
    return {**reports.gradebook_row(student, report), "note": note}
