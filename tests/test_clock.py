"""A step is charged its own time (engine/clock.py), measured on real processes in a real cgroup.

The machine is made slow in the two ways a jail meets: a CPU quota (its cgroup gives it a
quarter of a core) and load (busy processes on every core). Either stretches the wall clock;
neither may stretch what the student is charged, including work done in a thread of its own
that has ended by the time the step is over.
"""
import os
import subprocess
import sys
import time

import pytest
from busy import busy

from autograder.engine import jail as jails
from autograder.engine.clock import Clock

# Spins 1 s of CPU in a thread while the main thread waits for it, then says "done" and waits.
WORK = """
import sys, threading, time
def spin():
    end = time.thread_time() + 1.0
    while time.thread_time() < end:
        pass
sys.stdin.readline()
worker = threading.Thread(target=spin)
worker.start()
worker.join()
print("done", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def quarter_core():
    group = jails.Cgroup.create("clock-test", 512 * 2 ** 20, 64, cores=0.25)
    assert group is not None, "no writable cgroup: the jail's CPU bound cannot be tested here"
    yield group
    group.remove()


def charged(group, wall_clock_load: bool) -> tuple[float, float]:
    """(own seconds, wall seconds) of WORK's step, read as a Step does, every 0.25 s."""
    def join():
        for path in group.procs_files:
            with open(path, "w") as f:
                f.write(str(os.getpid()))

    proc = subprocess.Popen([sys.executable, "-c", WORK], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, preexec_fn=join)
    try:
        clock = Clock(proc.pid, group)
        clock.attach()
        since = clock.read()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        os.set_blocking(proc.stdout.fileno(), False)
        while not (proc.stdout.readline() or "").startswith("done"):
            clock.read()
            time.sleep(0.25)
        return clock.own(since)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("load", [False, True], ids=["quota", "quota and load"])
def test_work_in_a_thread_is_charged_its_cpu_not_the_wall_clock(quarter_core, load):
    if load:
        with busy(per_core=4):
            own, wall = charged(quarter_core, True)
    else:
        own, wall = charged(quarter_core, False)
    assert wall > 3.0, f"the quota did not slow it ({wall:.1f} s): the test proves nothing"
    assert own < 1.8, f"charged {own:.1f} s for 1 s of CPU in {wall:.1f} s"
