"""The course's autograder: checks as data, run on a submission in a sandbox.

    submission.py  read a .py / .ipynb, keep definitions, run nothing
    sandbox.py     a child process (worker.py) with time and memory limits runs the probes
    checks.py      Check, CheckResult, the lesson registry; mnist_dnn/ holds lesson 01's
                   catalogue, probes (child side) and judges (grader side)
    grading.py     submission → probes → judges → Report;  report.py renders it
    __main__.py    `python -m autograder grade|batch`;  selfcheck.py `check("model")`

Importing this package imports nothing heavy; `from autograder.grading import grade` does.
"""
