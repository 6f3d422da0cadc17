"""`batch --scheduler`: a class graded on a real Dask cluster on 127.0.0.1 (one `dask scheduler`,
two `dask worker` processes started here) gives the points and feedback of the local pool."""
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from submissions.catalogue import write

REPO = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).with_name("dask")


def start(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the workers import this repo's package
    return subprocess.Popen([str(DASK), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """tcp://127.0.0.1:<random port> of a scheduler with two single-threaded workers."""
    import distributed  # make test installs the [test] extra: missing, this fails (never skips)

    assert DASK.exists(), f"{DASK} is missing: `pip install -e '.[cluster]'` installs Dask"
    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    processes = [start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", address_file, cwd=folder)]
    try:
        deadline = time.monotonic() + 120
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert address_file.exists(), "the Dask scheduler did not start within 120 s"
        address = json.loads(address_file.read_text())["address"]
        for name in ("w1", "w2"):
            processes.append(start("worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--name", name, "--host", "127.0.0.1", "--no-dashboard",
                                   "--local-directory", folder / name, cwd=folder))
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_class(folder: Path) -> Path:
    """Two real submissions, one that defines nothing, one folder without a file."""
    folder.mkdir()
    for student, variant in (("alice", "reference"), ("bob", "no_shuffle")):
        write(variant, folder).rename(folder / f"{student}.py")
    (folder / "carol.py").write_text("x = 1\n")
    (folder / "dave").mkdir()
    return folder


def autograder(*args):
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def test_a_class_graded_on_dask_gets_the_points_of_the_local_pool(tmp_path, scheduler):
    class_dir = make_class(tmp_path / "class")
    local = autograder("batch", class_dir, "--out", tmp_path / "local.csv", "--workers", "2")
    remote = autograder("batch", class_dir, "--out", tmp_path / "dask.csv",
                        "--scheduler", scheduler)
    assert local.returncode == remote.returncode == 1, remote.stdout + remote.stderr  # dave
    assert (tmp_path / "dask.csv").read_text() == (tmp_path / "local.csv").read_text()
    rows = {row["student"]: row for row in csv.DictReader(open(tmp_path / "dask.csv"))}
    assert rows["alice"]["score"] == "25" and rows["bob"]["score"] == "24"
    assert rows["carol"]["score"] == "0" and rows["dave"]["error"].startswith("could not grade")
    for student in rows:
        feedback = (tmp_path / "dask-feedback" / f"{student}.txt").read_text()
        assert feedback == (tmp_path / "local-feedback" / f"{student}.txt").read_text()
    cached = [json.loads(line) for line in open(tmp_path / "dask.csv.cache.jsonl")]
    workers = {entry["result"]["worker"] for entry in cached}
    assert all(w.startswith("tcp://127.0.0.1:") for w in workers), workers  # graded remotely
    assert "could not reach" not in remote.stderr


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path):
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    (class_dir / "carol.py").write_text("x = 1\n")
    done = autograder("batch", class_dir, "--out", tmp_path / "g.csv", "--lesson", "01_mnist_dnn",
                      "--scheduler", "tcp://127.0.0.1:9")  # the discard port: nothing listens
    assert done.returncode == 2, done.stdout + done.stderr
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr


def test_nbcourse_grade_on_dask_records_what_the_local_pool_records(tmp_path, scheduler):
    """Two students (test_nbgrader.py's reference and unfilled lesson), autograded by nbgrader
    on the cluster."""
    import shutil

    import nbformat
    from test_nbgrader import LESSON, filled, nbgrader_grades

    from autograder.frontends.nbgrader import course as nbcourse
    from autograder.authoring.course import annotated_notebook

    local, remote = tmp_path / "local", tmp_path / "remote"
    annotated = annotated_notebook(LESSON)
    nbcourse.build(local, {LESSON: annotated})
    nbcourse.nbgrader("generate_assignment", LESSON, course_dir=local, timeout=120)
    release = nbformat.read(local / "release" / LESSON / f"{LESSON}.ipynb", as_version=4)
    students = {"reference": filled(release, annotated), "unfilled": release}
    for student, nb in students.items():
        (local / "submitted" / student / LESSON).mkdir(parents=True)
        nbformat.write(nb, local / "submitted" / student / LESSON / f"{LESSON}.ipynb")
    shutil.copytree(local, remote)
    for course_dir, engine in ((local, ["--workers", "2"]), (remote, ["--scheduler", scheduler])):
        done = subprocess.run([sys.executable, "-m", "autograder.frontends.nbgrader.course", "grade",
                               "--assignment", LESSON, "--course-dir", str(course_dir), *engine], cwd=REPO,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout + done.stderr
    for student in students:
        assert nbgrader_grades(remote, student) == nbgrader_grades(local, student), student
    assert sum(s for s, _ in nbgrader_grades(remote, "reference").values()) == 25
    cached = [json.loads(line) for line in open(remote / "autograde-cache.jsonl")]
    assert all(e["result"]["worker"].startswith("tcp://127.0.0.1:") for e in cached), cached


def test_a_scheduler_without_dask_installed_says_which_extra_to_install(tmp_path):
    """Dask is an extra ([cluster]): a course installed without it is told how to add it,
    not shown an ImportError's traceback."""
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    (class_dir / "carol.py").write_text("x = 1\n")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['distributed'] = None; "  # not installed
         "from autograder.frontends.cli import main; sys.exit(main())", "batch", str(class_dir),
         "--out", str(tmp_path / "g.csv"), "--lesson", "01_mnist_dnn",
         "--scheduler", "tcp://127.0.0.1:9"], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install -e '.[cluster]'" in done.stderr and "Traceback" not in done.stderr
