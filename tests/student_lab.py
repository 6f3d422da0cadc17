"""Drive the student's JupyterLab in a real browser: Debian's chromium through playwright.

Used by tests/test_browser.py (which asserts what the student sees) and by
benchmarks/bench_student.py (which prints how long it takes). Nothing is mocked: a real
JupyterLab on 127.0.0.1 with the student set-up of `make student` (autograder.frontends.student), a real
kernel, real MNIST, real clicks and keystrokes.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from autograder.authoring import course
from autograder.frontends import student

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LESSON = course.LESSONS[0]
SCREENSHOTS = course.REPO / "runs" / "ci-screenshots"  # runs/ is git-ignored; CI keeps it
IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
PROMPT = re.compile(r"\[(\d+)\]")


def missing_browser() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, which "
                f"`make test` runs: apt-get install -y chromium)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def solution_cell(marker: str, lesson: str = LESSON) -> str:
    """The reference answer for the lesson cell holding `marker` (e.g. "TODO (gap 1)"): the
    solution's cell with its nbgrader markers removed."""
    cell = next(c for c in course.read_solution(lesson).cells if marker in c.source)
    return unmarked(cell.source)


def unmarked(source: str) -> str:
    """A solution cell without its nbgrader markers (### BEGIN/END SOLUTION, HIDDEN TESTS)."""
    return "\n".join(line for line in source.split("\n")
                     if not line.strip().startswith(("### BEGIN ", "### END ")))


def filled_copy(lesson: str, parameters: dict | None = None):
    """A student's copy of `lesson` with every gap filled as the solution fills it, and the
    parameters cell set to `parameters` (e.g. {"EPOCHS": 1}) if given: the solution notebook
    itself, so that it holds whatever gaps the solution has."""
    from autograder import lessons
    from autograder.frontends.nbgrader.preprocessors import set_parameters

    nb = course.read_solution(lesson)
    for cell in nb.cells:
        cell.source = unmarked(cell.source)
        if parameters and "parameters" in cell.metadata.get("tags", []):
            cell.source = set_parameters(cell.source, parameters)
    nb.metadata[lessons.METADATA_KEY] = {"lesson": lesson}
    return course.student_copy(nb)


class LabServer:
    """`make student`'s JupyterLab, on 127.0.0.1 with a random port and token, rooted in `work`.
    Figures go to `run_dir` ($MNIST_RUN_DIR), or with None where a student's go: work/runs/."""

    def __init__(self, work: Path, run_dir: Path | None, log: Path):
        self.work, self.run_dir, self.log = work, run_dir, log
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.process = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def __enter__(self):
        workspaces = self.log.parent / "lab-workspaces"  # a fresh layout: the machine's saved
        workspaces.mkdir(exist_ok=True)                  # one may reopen other lessons' tabs
        extra = ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                 "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                 f"--LabApp.workspaces_dir={workspaces}"]
        env = {key: value for key, value in os.environ.items() if key != "MNIST_RUN_DIR"}
        env = student.lab_env({**env, **({"MNIST_RUN_DIR": str(self.run_dir)}
                                         if self.run_dir else {})})
        self.process = subprocess.Popen(student.lab_command(self.work, extra), env=env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}); see {self.log}")
            try:
                urllib.request.urlopen(self.url("/api/status"), timeout=2)
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within 120 s; see {self.log}")

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Notebook:
    """The student's notebook page: find cells, type into them, run them, read their output.
    `timings` collects seconds per step, for the benchmark."""

    def __init__(self, page, screenshots: Path = SCREENSHOTS):
        self.page, self.screenshots = page, screenshots
        self.timings: dict[str, float] = {}
        screenshots.mkdir(parents=True, exist_ok=True)

    def open(self, url: str) -> None:
        start = time.perf_counter()
        self.page.goto(url)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        self.timings["notebook shown"] = time.perf_counter() - start
        self.page.wait_for_selector(IDLE, timeout=120_000)
        self.timings["kernel ready"] = time.perf_counter() - start

    def shot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def cell(self, text: str):
        """The one cell whose text contains `text`."""
        cells = self.page.locator(".jp-Notebook .jp-Cell").filter(has_text=text)
        cells.first.wait_for(state="attached", timeout=60_000)  # editors are drawn lazily
        assert cells.count() == 1, f"{cells.count()} cells contain {text!r}"
        return cells.first

    def prompt(self, cell) -> str:
        return cell.locator(".jp-InputPrompt").text_content()

    def type_into(self, cell, source: str) -> None:
        """Replace the cell's code as a student would: click, select all, type (pasted as one
        input event, so the editor's auto-indent does not re-indent the lines)."""
        self.show(cell)
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(source)

    def run(self, cell, step: str | None = None, timeout_s: float = 300) -> None:
        """Shift+Enter in the cell; return when its prompt shows a new execution count."""
        start = time.perf_counter()
        before = self.start(cell)
        while not self.finished(cell, before):
            if time.perf_counter() > start + timeout_s:
                raise TimeoutError(f"the cell still runs after {timeout_s} s ({before!r})")
            time.sleep(0.05)
        if step:
            self.timings[step] = time.perf_counter() - start

    def start(self, cell) -> str:
        """Shift+Enter in the cell, without waiting; its prompt before (for `finished`)."""
        before = self.prompt(cell)
        self.show(cell)
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Shift+Enter")
        return before

    def finished(self, cell, before: str) -> bool:
        """Whether the cell's prompt shows an execution count other than `before`."""
        now = self.prompt(cell)
        return bool(PROMPT.search(now)) and now != before

    def run_all_above(self, cell, timeout_s: float = 300) -> None:
        """Select the cell, Run ▸ Run All Above Selected Cell; return when the code cell just
        above it shows a new execution count (cells run in order; a failing one stops the
        run: TimeoutError). Only cells near the window are in the page, so only that one is
        watched."""
        above = cell.locator("xpath=preceding-sibling::div[contains(@class, 'jp-CodeCell')][1]")
        before = self.prompt(above)
        self.show(cell)
        cell.locator(".jp-InputPrompt").click()
        self.menu("Run", "Run All Above Selected Cell")
        deadline = time.monotonic() + timeout_s
        while not self.finished(above, before):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cells above still run after {timeout_s} s")
            time.sleep(0.2)

    def output_text(self, cell) -> str:
        """What the cell's output area says (the DOM's text: an off-screen cell has no layout)."""
        return cell.locator(".jp-OutputArea").text_content()

    def show(self, element, block: str = "center") -> None:
        """Scroll an element (a cell, an output) into the window, as a student scrolls to it."""
        element.evaluate(f"el => el.scrollIntoView({{block: '{block}'}})")
        self.page.wait_for_timeout(300)

    def menu(self, menu: str, item: str) -> None:
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.get_by_role("menuitem", name=item).first.click()

    def restart_and_run_all(self, last_cell_text: str, timeout_s: float = 600) -> None:
        """Kernel ▸ Restart Kernel and Run All Cells…, confirm; return when the last cell ran
        (its prompt goes from [*] to a number)."""
        last = self.cell(last_cell_text).locator(".jp-InputPrompt")
        self.menu("Kernel", "Restart Kernel and Run All Cells…")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        start = time.perf_counter()
        self.page.wait_for_function("el => el.textContent.includes('*')",
                                    arg=last.element_handle(), timeout=60_000)
        self.page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)",
                                    arg=last.element_handle(), timeout=timeout_s * 1000)
        self.timings["Restart & Run All"] = time.perf_counter() - start
        self.page.wait_for_selector(IDLE, timeout=60_000)

    def restart(self) -> None:
        """Kernel ▸ Restart Kernel…, confirm; return when the new kernel is idle."""
        self.menu("Kernel", "Restart Kernel…")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator:not([data-status=\"idle\"])",
                                    timeout=30_000)
        self.page.wait_for_selector(IDLE, timeout=60_000)

    def save(self, path: Path, timeout_s: float = 30) -> None:
        """File ▸ Save (Ctrl+S); return when `path` was written."""
        before = path.stat().st_mtime_ns
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + timeout_s
        while path.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} was not saved within {timeout_s} s")
            time.sleep(0.1)
        time.sleep(0.5)  # the write may still be in progress


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
