"""The course and an LMS: names and late marks from the download, grades back in its format.

    nbgrader zip_collect   CanvasCollector  each file's Canvas user id is the student id; the
                                            sortable name and Canvas' LATE mark are kept
    nbgrader export        GradesExport     nbgrader's grades.csv + who was not graded, who was
                                            late (the course's default exporter)
                           CanvasExport     Canvas' gradebook import: one row per Canvas user id

Canvas names each file of a "Download Submissions" zip
`<sortable name>_[LATE_]<user id>_<submission id>_<file name the student uploaded>`, e.g.
`lovelaceada_LATE_1234_56789_01_mnist_dnn.ipynb`. The user id is unique and is what Canvas'
gradebook import matches rows by; the sortable name is neither (two students can share it). The
name carries no time: LATE is Canvas' own verdict against its due date, kept in
DIR/lms-submissions.json and shown in grades.csv; a late penalty is Canvas' late policy (it
applies to imported scores) or nbgrader's own (a due date in the gradebook and
`c.LateSubmissionPlugin.penalty_method`, which needs submission times: nbgrader's exchange
records them, Canvas' names do not) — see the README.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from nbgrader.plugins import CsvExportPlugin, ExportPlugin, FileNameCollectorPlugin
from traitlets import default

from autograder.frontends.nbgrader.autograde import failures, submission_state

CANVAS_NAME = (r"(?:.*/)?(?P<name>[^/_]+)_(?:(?P<late>(?i:late))_)?(?P<student_id>\d+)_"
               r"(?P<submission_id>\d+)_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$")
RECORD = "lms-submissions.json"  # assignment -> student id -> {"name", "late", "file"}


class CanvasCollector(FileNameCollectorPlugin):
    """nbgrader's collector, with Canvas' file names by default: the student id is the Canvas
    user id; the sortable name becomes the student's last_name (and lms_user_id the id) in the
    gradebook, and LATE is kept in DIR/lms-submissions.json. With another `named_regexp` (say
    Moodle's), the groups it has are kept: first_name, last_name, email (in the gradebook) and
    late."""

    @default("named_regexp")
    def _canvas_names(self):
        return CANVAS_NAME

    def collect(self, submitted_file):
        info = super().collect(submitted_file)
        if info:
            self._record(info, Path(submitted_file).name)
        return info

    def _record(self, info: dict, file: str) -> None:
        from nbgrader.api import Gradebook

        coursedir = self.parent.coursedir
        # the name groups nbgrader documents (and its zip_collect drops), Canvas' sortable name
        fields = {"last_name": info.get("last_name") or info.get("name"),
                  "first_name": info.get("first_name"), "email": info.get("email")}
        fields = {key: value for key, value in fields.items() if value}
        if info.get("submission_id"):  # Canvas: the student id is its user id
            fields["lms_user_id"] = info["student_id"]
        if fields:
            with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
                gradebook.update_or_create_student(info["student_id"], **fields)
        path = Path(coursedir.root) / RECORD
        record = lms_record(coursedir.root)
        record.setdefault(coursedir.assignment_id, {})[info["student_id"]] = {
            "name": info.get("name") or "", "late": bool(info.get("late")), "file": file}
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def lms_record(course_dir) -> dict:
    path = Path(course_dir) / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def final_score(submission) -> float:
    """nbgrader's score after its late penalty, never below 0 (as nbgrader's export)."""
    return max(0.0, submission.score - (submission.late_submission_penalty or 0.0))


class GradesExport(CsvExportPlugin):
    """nbgrader's grades.csv (same columns, same numbers) + `status`, `error` and `lms_late`.
    A student whose submission was not graded has blank scores, not 0 (nbgrader's export wrote
    0.0), and the status and reason `course grade` recorded (autograde.FAILURES; else "not
    graded"); a student who handed nothing in for an assignment keeps nbgrader's 0.0 with status
    "no submission" (nbgrader lists every student under every assignment)."""

    COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
               "email", "raw_score", "late_submission_penalty", "score", "max_score", "status",
               "error", "lms_late"]

    def export(self, gradebook) -> None:
        root = self.parent.coursedir.root
        late, failed = lms_record(root), failures(root)
        with open(self.to or "grades.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, self.COLUMNS)
            writer.writeheader()
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in self.assignment:
                    continue
                for student in gradebook.students:
                    if self.student and student.id not in self.student:
                        continue
                    row = self._row(gradebook, assignment, student,
                                    failed.get(assignment.name, {}).get(student.id))
                    lms = late.get(assignment.name, {}).get(student.id, {})
                    writer.writerow({**row, "lms_late": "LATE" if lms.get("late") else ""})

    @staticmethod
    def _row(gradebook, assignment, student, failure: dict | None) -> dict:
        status, submission = submission_state(gradebook, assignment.name, student.id)
        row = {"assignment": assignment.name, "duedate": assignment.duedate or "",
               "student_id": student.id, "last_name": student.last_name or "",
               "first_name": student.first_name or "", "email": student.email or "",
               "max_score": assignment.max_score, "status": status, "error": "",
               "timestamp": submission.timestamp or "" if submission else ""}
        if failure:  # this run of `course grade` could not grade it, whatever nbgrader holds
            status = row["status"] = failure["status"]
            row["error"] = failure["error"]
        if status == "no submission":
            return {**row, "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0}
        if status != "graded":
            return {**row, "raw_score": "", "late_submission_penalty": "", "score": ""}
        return {**row, "raw_score": submission.score,
                "late_submission_penalty": submission.late_submission_penalty or 0.0,
                "score": final_score(submission)}


class CanvasExport(ExportPlugin):
    """Canvas' gradebook import CSV: the columns "Student", "ID", "SIS User ID", "SIS Login ID",
    "Section", then one column per assignment, named by it, and a "Points Possible" row.
    Canvas matches each row by ID, the Canvas user id (the student id CanvasCollector gives);
    a column it does not know becomes a new assignment. A student without a graded submission
    gets a blank cell, which Canvas leaves as it is (not a 0)."""

    HEAD = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]

    def export(self, gradebook) -> None:
        assignments = [a for a in gradebook.assignments
                       if not self.assignment or a.name in self.assignment]
        self._failed = failures(self.parent.coursedir.root)
        with open(self.to or "canvas.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.HEAD + [a.name for a in assignments])
            writer.writerow(["Points Possible", "", "", "", ""]
                            + [f"{a.max_score:g}" for a in assignments])
            for student in gradebook.students:
                if self.student and student.id not in self.student:
                    continue
                name = ", ".join(n for n in (student.last_name, student.first_name) if n)
                writer.writerow([name or student.id, student.lms_user_id or student.id, "", "",
                                 ""] + [self._cell(gradebook, a.name, student.id)
                                        for a in assignments])

    def _cell(self, gradebook, assignment: str, student: str) -> str:
        status, submission = submission_state(gradebook, assignment, student)
        failed = student in self._failed.get(assignment, {})
        return f"{final_score(submission):g}" if status == "graded" and not failed else ""
