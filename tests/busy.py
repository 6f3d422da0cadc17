"""Load for tests and benchmarks: busy processes on every core, and a hostile classmate.

    with busy(per_core=4):      # the machine loaded as an instructor's shared server is
        grade(...)

A hostile classmate (`HOSTILE`) is a correct submission that, when its file is defined, starts
200 busy processes in sessions of their own and takes tqdm's lock for good: everything it can
do to the classmates graded beside it or after it without leaving its jail.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

SPIN = "while True:\n    pass\n"

HOSTILE = '''

class Hostile:
    import os
    for _ in range(200):
        if os.fork() == 0:
            os.setsid()
            while True:
                pass
    HOLD = __import__("tqdm").tqdm.get_lock().acquire()
'''


@contextlib.contextmanager
def busy(per_core: int = 4):
    """`per_core` processes spinning on every core of the machine, each in its own session,
    until the block ends."""
    count = per_core * (os.cpu_count() or 1)
    procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())
