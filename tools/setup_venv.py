"""Install the course into the running venv: the right torch build first, then the project.

    .venv/bin/python tools/setup_venv.py [--extras test] [--log FILE] [--plan]

`make venv` runs it with the venv's own python (standard library only). Why torch first: on
Linux x86_64, PyPI's torch is a CUDA build whose nvidia-* wheels make the venv ~6 GB; a machine
without an NVIDIA GPU needs only a CPU build (~1 GB). There, the first of these that offers one
is used, and the output says which:
  1. PyTorch's CPU index ($TORCH_CPU_INDEX, default https://download.pytorch.org/whl/cpu);
  2. a CPU wheel among pip's configured find-links (what `pip install --no-index torch` sees);
  3. else PyPI's default build, as a plain dependency of the project.
A machine with an NVIDIA GPU, or another platform (macOS, Linux ARM, Windows: PyPI's build there
has no CUDA libraries), gets PyPI's build. $TORCH=cpu|pypi overrides the choice (default auto).
A torch already installed is kept. pip's full output goes to the log file; only its errors and
a line per step are shown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = os.environ.get("TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu").rstrip("/")
PROBE_TIMEOUT = 5  # seconds: an index that does not answer by then is taken as unreachable
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def say(text: str) -> None:
    print(f"venv: {text}", flush=True)


def torch_requirement() -> str:
    """The project's own torch range (pyproject.toml is its one home)."""
    found = re.search(r'"(torch\s*[<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    return found.group(1) if found else "torch"


# --------------------------------------------------------------------------- what is here

def nvidia_gpu() -> str | None:
    """The first NVIDIA GPU's name (from the driver), or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    return gpus[0] if listed.returncode == 0 and gpus else None


def installed_torch() -> str | None:
    """The version of the torch installed in this venv ('2.13.0+cpu'), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def is_cpu_build(version: str) -> bool:
    return version.endswith("+cpu")  # PyTorch labels its CPU wheels so


# --------------------------------------------------------------------------- the CPU sources
# A source answers (version, where) of the torch it would install, or raises Unavailable(why).

class Unavailable(Exception):
    """This source offers no CPU build of torch; the message says why."""


def probe(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=PROBE_TIMEOUT).close()
    except Exception as error:  # DNS, refused, timeout, TLS, HTTP error: all mean "not here"
        raise Unavailable(f"unreachable ({getattr(error, 'reason', error)})") from None


def would_install(requirement: str, source_args: list[str]) -> tuple[str, str]:
    """(version, url) of the torch pip picks from these sources; installs nothing."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        done = subprocess.run(
            PIP + ["install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
                   "--timeout", str(PROBE_TIMEOUT), "--retries", "1",
                   "--report", str(report), *source_args, requirement],
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not report.is_file():
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise Unavailable(f"no torch there ({last})")
        picked = json.loads(report.read_text())["install"][0]
    version, url = picked["metadata"]["version"], picked["download_info"]["url"]
    if not is_cpu_build(version):
        raise Unavailable(f"its torch is {version}, not a CPU build ({url})")
    return version, url


def from_cpu_index(requirement: str) -> tuple[str, str]:
    probe(f"{CPU_INDEX}/torch/")
    return would_install(requirement, ["--index-url", CPU_INDEX])


def from_find_links(requirement: str) -> tuple[str, str]:
    return would_install(requirement, ["--no-index"])


# (name, finder, what `pip install` then needs besides pip's configuration)
CPU_SOURCES = (
    (f"PyTorch's CPU index ({CPU_INDEX})", from_cpu_index, ["--extra-index-url", CPU_INDEX]),
    ("pip's configured find-links", from_find_links, []),
)


def cpu_torch(requirement: str) -> tuple[str, list[str]] | None:
    """(exact requirement, pip arguments) of the first CPU build offered, or None."""
    for name, find, install_args in CPU_SOURCES:
        try:
            version, url = find(requirement)
        except Unavailable as why:
            say(f"  {name}: {why}")
            continue
        say(f"  {name}: torch {version} ({url})")
        return f"torch=={version}", install_args
    return None


# --------------------------------------------------------------------------- the plan

def plan_torch(choice: str) -> tuple[str, list[str]] | None:
    """What to install for torch before the project ((requirement, pip arguments)), or None
    when the project's own install should bring it (already installed, or PyPI's build)."""
    have = installed_torch()
    if have:
        say(f"torch {have} is already installed: kept")
        return None
    gpu = nvidia_gpu()
    linux_x86 = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")
    if choice == "pypi" or (choice == "auto" and (gpu or not linux_x86)):
        why = (f"TORCH=pypi" if choice == "pypi" else f"NVIDIA GPU found ({gpu})" if gpu
               else f"{sys.platform} {platform.machine()}: PyPI's build has no CUDA libraries")
        say(f"torch: PyPI's build ({why})")
        return None
    why = "TORCH=cpu" if choice == "cpu" else "no NVIDIA GPU here"
    say(f"torch: looking for a CPU build ({why}; PyPI's Linux build carries ~4 GB of CUDA)")
    found = cpu_torch(torch_requirement())
    if found is None:
        say("torch: no CPU build offered: PyPI's build (with CUDA, ~5 GB) comes with the project")
    return found


def pip_install(what: str, args: list[str], log: Path) -> None:
    """pip install, quiet: its full output is appended to `log`; on failure its errors show."""
    started = time.monotonic()
    say(f"installing {what} ...")
    done = subprocess.run(PIP + ["install", "--quiet", "--quiet", "--log", str(log), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        print(done.stdout, end="", file=sys.stderr)
        say(f"pip failed installing {what}: its full output is in {log}")
        sys.exit(done.returncode)
    say(f"  done in {time.monotonic() - started:.0f} s")


def size_gb(folder: Path) -> float:
    files = (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tools/setup_venv.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--extras", default="", help="the project's extras, e.g. test")
    parser.add_argument("--log", type=Path, default=Path(sys.prefix) / "pip.log")
    parser.add_argument("--plan", action="store_true",
                        help="only say which torch would be installed, and from where")
    args = parser.parse_args(argv)
    choice = os.environ.get("TORCH", "auto")
    if choice not in ("auto", "cpu", "pypi"):
        parser.error(f"TORCH={choice}: use auto, cpu or pypi")
    started = time.monotonic()
    torch = plan_torch(choice)
    if args.plan:
        return 0
    args.log.unlink(missing_ok=True)  # the log of this set-up only (pip appends)
    if torch:
        requirement, source_args = torch
        pip_install(requirement, [*source_args, requirement], args.log)
    project = f"-e {ROOT}" + (f"[{args.extras}]" if args.extras else "")
    pip_install(f"the course ({project}; a few minutes the first time)",
                ["-e", f"{ROOT}[{args.extras}]" if args.extras else str(ROOT)], args.log)
    version = installed_torch()
    kind = "CPU build" if is_cpu_build(version) else "PyPI's build"
    say(f"ready in {time.monotonic() - started:.0f} s: torch {version} ({kind}), "
        f"{size_gb(Path(sys.prefix)):.1f} GB in {sys.prefix}; pip's full log: {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
