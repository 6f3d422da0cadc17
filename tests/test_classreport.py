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


def test_diagnoses_count_students_whose_messages_differ_only_in_numbers():
    undefined = "MyModel is not defined"
    entries = [
        {"student": "dan", "error": "", "checks": [check("c", False, undefined),
                                                   check("d", False, undefined)]},
        {"student": "ann", "error": "", "checks": [check("a", False, "accuracy 0.41 < 0.9"),
                                                   check("b", True)]},
        {"student": "ben", "error": "", "checks": [check("a", False, "accuracy 0.37 < 0.9"),
                                                   check("b", False, "no zero_grad")]},
        {"student": "cat", "error": "could not grade: no file", "checks": []},
    ]
    assert classreport.diagnoses(entries) == [
        ("accuracy # < #", ["a"], ["ann", "ben"]),
        ("MyModel is not defined", ["c", "d"], ["dan"]),  # one student, two checks
        ("could not grade: no file", ["(not graded)"], ["cat"]),
        ("no zero_grad", ["b"], ["ben"])]
    assert classreport.failure_rates(entries)[2:] == [("a", "a title", 2, 2),
                                                      ("b", "a title", 1, 2)]


def test_student_text_is_escaped_and_nothing_is_fetched():
    entries = [{"student": HOSTILE, "score": 3.0, "max_score": 25.0, "error": "",
                "seconds": 4.2, "checks": [check("a", False, f"<script>alert(x)</script>{HOSTILE}")]}]
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
