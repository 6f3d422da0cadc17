"""The install: what the core pulls in, and which torch tools/setup_venv.py picks, from where.

The torch choice runs the real script in a fresh venv with real pip against sources made here:
a PEP 503 index on 127.0.0.1 standing in for PyTorch's CPU index (unreachable from CI) and a
find-links folder, each holding a small wheel named like torch's builds (pip only reads their
metadata: --plan installs nothing). pip's configuration is switched off for these runs so that
the machine's own sources (its indexes, /opt/wheels) do not take part.
"""
import re
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from localhttp import closed_port_url, serve, silent_server
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as pip vendors it
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "setup_venv.py"
TEST_TOOLS = {"pytest", "playwright", "distributed", "dask"}


# --------------------------------------------------------------------------- what the core pulls

def closure(requirements) -> set[str]:
    """Names of the installed distributions these requirements pull in, transitively."""
    seen, todo = set(), [(r, frozenset()) for r in requirements]
    while todo:
        text, chosen = todo.pop()  # a requirement, and the extras asked of its owner
        requirement = Requirement(text)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e})
                                          for e in chosen | {""}):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            todo += [(r, key[1]) for r in distribution(name).requires or []]
        except PackageNotFoundError:  # an optional dependency this venv did not install
            pass
    return {name for name, _ in seen}


def declared(extras=()) -> list[str]:
    """The requirements pyproject.toml gives pip for `.[extras]`, the project's own extras
    (mnist-course[cluster]) expanded: what pip reads, not a venv's possibly older metadata."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in extras:
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if requirement.name == project["name"]:
                found += declared(requirement.extras)
            else:
                found.append(text)
    return found


def test_core_install_pulls_no_test_or_cluster_tools():
    core = closure(declared())
    assert {"torch", "jupyterlab", "nbgrader"} <= core
    assert not core & (TEST_TOOLS | {"torchvision"}), "make run would install test tools"


def test_the_test_extra_brings_the_test_tools():
    assert TEST_TOOLS <= closure(declared(["test"]))


# --------------------------------------------------------------------------- which torch

def fake_wheel(folder: Path, version: str) -> Path:
    """A wheel whose metadata says torch `version`: all pip reads for --plan."""
    path = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    files = {"METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
             "WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             "RECORD": ""}
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(f"{info}/{name}", text)
    return path


def cpu_index(tmp_path: Path, version: str) -> Path:
    """A PEP 503 simple index holding one torch wheel."""
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    wheel = fake_wheel(root / "torch", version)
    href = wheel.name.replace("+", "%2B")
    (root / "torch" / "index.html").write_text(f'<html><body><a href="{href}">{wheel.name}</a>')
    return root


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A venv with pip and nothing else: no torch installed yet, as on a new machine."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return venv / "bin" / "python"


def plan(python, tmp_path, cpu_index_url, links: list[str] = (), torch="cpu"):
    """The script's --plan output: pip's own configuration off, only the sources given."""
    links_dir = tmp_path / "links"
    links_dir.mkdir(exist_ok=True)
    for version in links:
        fake_wheel(links_dir, version)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null",
           "PIP_NO_CACHE_DIR": "1", "TORCH": torch, "PIP_FIND_LINKS": str(links_dir),
           "PIP_INDEX_URL": cpu_index_url, "TORCH_CPU_INDEX": cpu_index_url}
    done = subprocess.run([str(python), str(SCRIPT), "--plan"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_cpu_index_is_the_first_source(fresh_venv, tmp_path):
    with serve(cpu_index(tmp_path, "2.2.0+cpu")) as url:
        said = plan(fresh_venv, tmp_path, url, links=["2.1.0+cpu"])
    assert f"PyTorch's CPU index ({url}): torch 2.2.0+cpu ({url}/torch/torch-2.2.0%2Bcpu" in said
    assert "find-links" not in said


def test_unreachable_cpu_index_falls_through_to_find_links(fresh_venv, tmp_path):
    with silent_server() as url:
        said = plan(fresh_venv, tmp_path, url, links=["2.1.0+cpu"])
    assert f"PyTorch's CPU index ({url}): unreachable (timed out)" in said
    assert "pip's configured find-links: torch 2.1.0+cpu (file://" in said


def test_no_cpu_build_anywhere_leaves_torch_to_pypi(fresh_venv, tmp_path):
    """A CUDA-sized build in find-links is not taken for a CPU one."""
    url = closed_port_url()
    said = plan(fresh_venv, tmp_path, url, links=["2.3.0"])
    assert f"PyTorch's CPU index ({url}): unreachable (" in said
    assert "pip's configured find-links: its torch is 2.3.0, not a CPU build" in said
    assert "no CPU build offered: PyPI's build (with CUDA, ~5 GB) comes with the project" in said


def test_torch_pypi_skips_the_search(fresh_venv, tmp_path):
    with silent_server() as url:
        said = plan(fresh_venv, tmp_path, url, links=["2.1.0+cpu"], torch="pypi")
    assert said.strip() == "venv: torch: PyPI's build (TORCH=pypi)"


def test_installed_torch_is_kept():
    """The venv running the tests has torch: the script keeps it and names its build."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--plan"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from importlib.metadata import version

    assert done.stdout.strip() == f"venv: torch {version('torch')} is already installed: kept"
