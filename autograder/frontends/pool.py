"""Where grading tasks run: a thread pool on this machine, or a Dask cluster.

    for name, future in run(function, names, prepare, workers=2):            # here
    for name, future in run(function, names, prepare, scheduler="tcp://...:8786"):  # a cluster

Each task is `function(prepare(name))`: `prepare` builds the task's plain data (a file's bytes,
say) only when the task is submitted, and at most `window` tasks are in flight, so that a class
of thousands is never all in memory. Futures come back as they finish, with a progress bar and
its ETA on stderr. A thread is enough here: each task's work happens in child processes.

Ctrl-C stops the run: no task starts any more, and a task running here stops at its next
`checkpoint` (a grading step: its children are closed as usual); its result is dropped, so
nothing half-done is kept. The caller says what was kept (see `Interrupted`).
"""
from __future__ import annotations

import concurrent.futures
import sys
import threading

from tqdm import tqdm

from autograder.engine.checks import UsageError

CONNECT_TIMEOUT = "30s"
STOP = threading.Event()  # set by Ctrl-C: the tasks running in this process stop


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): `kept` results were kept for the next run, `left`
    tasks were not done."""

    def __init__(self, kept: int, left: int, where: str):
        super().__init__(kept, left, where)
        self.kept, self.left, self.where = kept, left, where

    def __str__(self) -> str:
        then = (f"grade the other {self.left}: what was kept is not graded again" if self.left
                else "finish: nothing is graded again")
        return (f"interrupted: {self.kept} graded result{'s' * (self.kept != 1)} kept "
                f"({self.where}); run the same command again to {then}")


def checkpoint(text: str = "") -> None:
    """Called by a task between its steps: after Ctrl-C, the task stops here."""
    if STOP.is_set():
        raise KeyboardInterrupt("interrupted")


def run(function, names: list[str], prepare, workers: int = 1, scheduler: str | None = None,
        desc: str = "grading"):
    """Yield (name, future) for each name, in the order the tasks finish."""
    if not names:
        return
    with Executor(workers, scheduler) as executor:
        progress = tqdm(total=len(names), desc=desc, unit="submission", file=sys.stderr)
        pending, named = set(), {}
        try:
            for name in names:
                future = executor.submit(function, prepare(name))
                pending.add(future)
                named[future] = name
                while len(pending) >= executor.window or (pending and len(named) == len(names)):
                    done, pending = executor.wait_first(pending)
                    for future in done:
                        progress.update()
                        yield named[future], future
        except KeyboardInterrupt:
            STOP.set()  # the running tasks stop at their next step; Executor.__exit__ waits
            progress.close()
            print("\ninterrupted: stopping the submissions being graded at their next step "
                  "(Ctrl-C again: quit now)", file=sys.stderr)
            raise
        progress.close()


class Executor:
    """submit, wait_first and window, for a thread pool here or for a Dask cluster."""

    def __init__(self, workers: int = 1, scheduler: str | None = None):
        self.workers, self.scheduler = max(1, workers), scheduler

    def __enter__(self):
        if self.scheduler:
            self._connect()
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(self.workers)
            self.window = 2 * self.workers
        return self

    def _connect(self):
        try:
            import distributed
        except ImportError:
            raise UsageError("--scheduler needs Dask, an extra of the course: "
                             "pip install -e '.[cluster]'") from None

        try:
            self.pool = distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as error:
            raise UsageError(f"could not reach the Dask scheduler at {self.scheduler}: "
                             f"{error}") from None
        threads = sum(self.pool.nthreads().values())
        if not threads:
            print(f"autograder: the scheduler at {self.scheduler} has no workers yet; tasks "
                  f"wait until one joins", file=sys.stderr)
        self.window = max(64, 2 * threads)  # workers may join later (an adaptive cluster)

    def submit(self, function, payload):
        if self.scheduler:
            return self.pool.submit(function, payload, pure=False)
        return self.pool.submit(function, payload)

    def wait_first(self, futures):
        """(done, not done) as soon as one of `futures` is done."""
        if self.scheduler:
            import distributed

            return tuple(distributed.wait(futures, return_when="FIRST_COMPLETED"))
        return tuple(concurrent.futures.wait(futures, return_when="FIRST_COMPLETED"))

    def __exit__(self, *exc):
        if self.scheduler:
            self.pool.close()
        else:
            self.pool.shutdown(cancel_futures=True)


def where() -> str:
    """The Dask worker's address when this runs on one, else this machine's name."""
    if "distributed" in sys.modules:
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:  # not in a Dask task
            pass
    import socket

    return socket.gethostname()
