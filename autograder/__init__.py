"""The course's autograder, in four layers (each may import only the layers above it):

    engine/      knows no lesson and no dataset: read a submission (submission.py), run it in
                 a jail (jail.py, sandbox.py, worker.py, wire.py), judge what comes back
                 (grading.py), render reports (report.py). A lesson is a `Lesson` record
                 (lesson.py) handed in by the caller.
    lessons/     the registry (lessons/__init__.py) and one package per lesson, each building
                 its Lesson record; common/ holds what several lessons share (MNIST files,
                 model export, fixtures).
    frontends/   thin: the CLI (cli.py, `python -m autograder`), batch grading (local pool or
                 Dask), the self-check cards (selfcheck.py), the pytest plugin, nbgrader.
    authoring/   solutions/ -> lessons/ and the nbgrader source (course.py).

Importing this package imports nothing heavy; `from autograder.engine.grading import grade` does.
"""
