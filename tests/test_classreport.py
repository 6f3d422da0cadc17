"""The class report: one self-contained HTML file, parsed here and opened in a real browser."""
import base64
import csv
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from student_lab import SCREENSHOTS, launch, missing_browser
from submissions.catalogue import write

from autograder.frontends import classreport

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>&amp;\"'=cmd|x"  # a file name a student chose


class Page(HTMLParser):
    """Tags, attributes and text of an HTML page, as a browser's parser sees them."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def check(check_id, passed, message="", title="a title"):
    return {"id": check_id, "title": title, "passed": passed, "message": message}


def student(name, checks=(), status="graded", score=None, error="", seconds=4.0):
    return {"student": name, "status": status, "score": score, "max_score": 25.0,
            "error": error, "seconds": seconds, "note": "", "checks": list(checks)}


def test_diagnoses_count_students_whose_messages_differ_only_in_numbers():
    undefined = "MyModel is not defined"
    entries = [
        student("dan", [check("c", False, undefined), check("d", False, undefined)]),
        student("ann", [check("a", False, "accuracy 0.41 < 0.9"), check("b", True)]),
        student("ben", [check("a", False, "accuracy 0.37 < 0.9"),
                        check("b", False, "no zero_grad")]),
        student("cat", status="rejected", error="could not grade: no file"),
    ]
    assert classreport.diagnoses(entries) == [
        ("accuracy 0.37–0.41 < 0.9", ["a"], ["ann", "ben"]),  # what varies, as its range
        ("MyModel is not defined", ["c", "d"], ["dan"]),  # one student, two checks
        ("no zero_grad", ["b"], ["ben"])]  # cat was not graded: no diagnosis, no failure
    assert classreport.failure_rates(entries)[2:] == [("a", "a title", 2, 2),
                                                      ("b", "a title", 1, 2)]


def test_a_diagnosis_keeps_the_numbers_its_students_share_and_the_names_with_digits():
    """'#' for every digit garbled the advice: 'use dim=#', 'nn.Conv#d', a path's digits."""
    advice = ("softmax over dim=0 mixes the images of a batch: use dim=1 in "
              "nn.Conv2d's model at /tmp/autograder-x1y2/cut.py line {}")
    entries = [student(name, [check("a", False, advice.format(line))])
               for name, line in (("ann", 57), ("ben", 61))]
    [(message, _, students)] = classreport.diagnoses(entries)
    assert students == ["ann", "ben"]
    assert message == ("softmax over dim=0 mixes the images of a batch: use dim=1 in "
                       "nn.Conv2d's model at /tmp/autograder-x1y2/cut.py line 57–61")


CLASS = [student("ann", [check("a", True)], score=25.0),
         student("ben", [check("a", False, "too slow")], score=15.0),
         student("cy", status="not graded", error="not graded: the grader ran out of time"),
         student("dee", status="rejected", error="could not grade: could not read dee.ipynb")]


def test_students_not_graded_are_counted_apart_and_never_as_zeros():
    page = Page(classreport.render(CLASS, title="class"))
    text = " ".join(" ".join(page.text).split())  # a space between cells
    assert ("4 students, 2 graded, 1 not graded (the grader or the machine failed: grade them "
            "again), 1 could not be graded (the file handed in)") in text
    assert "mean 20.0, median 20, full marks 1, zero 0" in text  # of ann and ben only
    assert "cy not graded not graded: the grader ran out of time" in text
    assert "dee rejected could not grade: could not read dee.ipynb" in text
    graded = [e for e in CLASS if e["status"] == "graded"]  # the histogram: the same figure
    assert classreport._scores(CLASS) == classreport._scores(graded)
    assert classreport.failure_rates(CLASS) == [("a", "a title", 1, 2)]


def test_the_report_has_a_row_per_student():
    page = Page(classreport.render(CLASS, title="class"))
    text = " ".join(" ".join(page.text).split())  # a space between cells
    assert "student status score failed checks, or why not graded seconds" in text
    assert "ann graded 25/25 every check passed 4.0" in text
    assert "ben graded 15/25 a 4.0" in text
    assert "cy not graded — not graded: the grader ran out of time" in text


def test_student_text_is_escaped_and_nothing_is_fetched():
    entries = [student(HOSTILE, [check("a", False, f"<script>alert(x)</script>{HOSTILE}")],
                       score=3.0, seconds=4.2)]
    page = Page(classreport.render(entries, title=f"class {HOSTILE}"))
    assert "script" not in page.tags and page.tags.count("img") == 3  # the three figures
    assert not [a for a in page.attributes if a[1].startswith("on")]
    text = "".join(page.text)
    assert HOSTILE in text and "<script>alert(x)</script>" in text  # shown as text, not markup
    for tag, name, value in page.attributes:
        if name in ("src", "href"):
            assert value.startswith("data:image/png;base64,"), (tag, value[:40])
            assert base64.b64decode(value.split(",", 1)[1]).startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A class graded by `batch --report`: real submissions and a hostile file name."""
    root = tmp_path_factory.mktemp("report")
    folder = root / "class"
    folder.mkdir()
    for student, variant in (("alice", "reference"), ("bob", "no_shuffle")):
        write(variant, folder).rename(folder / f"{student}.py")
    (folder / f"{HOSTILE}.py").write_text("x = 1\n")
    (folder / "dave").mkdir()  # nothing to grade
    done = subprocess.run([sys.executable, "-m", "autograder", "batch", folder, "--out",
                           root / "grades.csv", "--report", root / "report.html",
                           "--workers", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr  # dave could not be graded
    return root


def test_batch_writes_a_report_of_the_class(graded_class):
    rows = list(csv.DictReader(open(graded_class / "grades.csv")))
    assert len(rows) == 4 and HOSTILE in [row["student"] for row in rows]  # one row each
    html = (graded_class / "report.html").read_text()
    page = Page(html)
    text = " ".join("".join(page.text).split())
    assert "4 students, 3 graded, 1 could not be graded" in text
    assert "fit_reshuffles" in text and "1/3" in text  # bob's failure, out of 3 graded
    assert HOSTILE in text and "script" not in page.tags
    assert "http://" not in html and "https://" not in html


@pytest.mark.browser
def test_report_opens_in_a_real_browser(graded_class):
    """Debian's chromium (tests/student_lab.py): missing, the test fails, it never skips."""
    problem = missing_browser()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    requests, dialogs = [], []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / "class-report.png"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto((graded_class / "report.html").as_uri())
            page.wait_for_load_state("load")
            figures = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
            text = page.inner_text("body")
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert len(figures) == 3 and all(width > 300 for width in figures), figures
    assert HOSTILE in text and not dialogs
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert screenshot.stat().st_size > 20_000  # a page, not a blank
