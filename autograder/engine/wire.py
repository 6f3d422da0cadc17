"""The private channel between the grader and its sandbox child.

Requests go down as JSON lines. Replies come up as frames: MAGIC, an 8-byte length, then a
`torch.save` payload that the grader reads with `weights_only=True` (tensors and plain
containers only, so a forged reply cannot run code in the grader) — but only once the grader
has rebuilt its zip archive itself from entries stored uncompressed, with a small pickle
(`archive`: a frame of 0.5 MB that inflated to 512 MB grew the grader's own process by 1.4 GB,
and every grading in the same batch with it) — then checks with `plain`:
only None, bool, int, float, str, lists, tuples, dicts with str keys and plain tensors cross,
within size and depth bounds. Strings arrive on one line (line breaks and other control or
format characters replaced, length capped): text from a student's code cannot forge a line of
a report, such as a fake "✓ ... [2/2]".
"""
from __future__ import annotations

import io
import os
import struct
import unicodedata
import zipfile

import torch

MAGIC = b"AGF1"
HEADER = struct.Struct(">4sQ")
MAX_FRAME = 64 * 2 ** 20   # bytes of one frame (an exported model of a few million weights)
MAX_DEPTH = 16             # nesting of containers
MAX_ITEMS = 100_000        # container items and string characters in one frame
MAX_PICKLE = 256 * 2 ** 10  # the pickle of one frame (the tensors are beside it): ~8 KB used
MAX_ENTRIES = 1000          # files in one frame's archive (one per tensor: ~100 used)
MAX_TEXT = 2000            # characters of one string
MAX_INT = 2 ** 63
TENSOR_TYPES = {torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool}
LINE_BREAKS = {"\n": "⏎", "\r": "⏎", "\t": " "}
UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}  # controls, bidi overrides, separators


class MalformedFrame(Exception):
    pass


def write_frame(fd: int, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    data = memoryview(HEADER.pack(MAGIC, len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


class FrameReader:
    """Accumulates bytes; `pop()` returns the next complete, checked object or None."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pop(self):
        if len(self.buffer) < HEADER.size:
            return None
        magic, size = HEADER.unpack_from(self.buffer)
        if magic != MAGIC or size > MAX_FRAME:
            raise MalformedFrame("bad frame header" if magic != MAGIC else
                                 f"a reply of {size / 2 ** 20:.0f} MB, over the "
                                 f"{MAX_FRAME // 2 ** 20} MB allowed")
        end = HEADER.size + size
        if len(self.buffer) < end:
            return None
        payload = bytes(self.buffer[HEADER.size:end])
        del self.buffer[:end]
        payload = archive(payload)
        try:
            obj = torch.load(io.BytesIO(payload), weights_only=True)
        except Exception as error:  # RecursionError, MemoryError, UnpicklingError, ...
            raise MalformedFrame(f"unreadable frame: {type(error).__name__}") from error
        return plain(obj)


def archive(payload: bytes) -> bytes:
    """A frame's zip archive, rebuilt by the grader from what it checked: stored entries only
    (a compressed one could inflate to any size in the grader's own process), at most
    MAX_ENTRIES of them, MAX_FRAME bytes in all and MAX_PICKLE of pickle (whose opcodes build
    objects: 4 MB of them cost 320 MB). MalformedFrame otherwise."""
    rebuilt, total = io.BytesIO(), 0
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as source, \
                zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as target:
            entries = source.infolist()
            if len(entries) > MAX_ENTRIES:
                raise MalformedFrame(f"a reply of {len(entries)} files")
            for entry in entries:
                total += max(entry.file_size, entry.compress_size)
                if entry.compress_type != zipfile.ZIP_STORED:
                    raise MalformedFrame("a reply with a compressed part")
                if total > MAX_FRAME or (entry.filename.endswith(".pkl")
                                         and entry.file_size > MAX_PICKLE):
                    raise MalformedFrame("a reply too large to read")
                target.writestr(entry.filename, source.read(entry))
    except MalformedFrame:
        raise
    except Exception as error:  # BadZipFile, a bad CRC, a size that lies, ...
        raise MalformedFrame(f"unreadable frame: {type(error).__name__}") from error
    return rebuilt.getvalue()


def plain(obj, depth: int = 0, budget: list | None = None):
    """`obj` if it is plain data within bounds (str cleaned, tensors detached); else
    MalformedFrame naming what is wrong."""
    budget = [MAX_ITEMS] if budget is None else budget
    if depth > MAX_DEPTH:
        raise MalformedFrame(f"data nested more than {MAX_DEPTH} deep")
    if obj is None or type(obj) in (bool, float):
        return obj
    if type(obj) is int:
        if not -MAX_INT <= obj < MAX_INT:
            raise MalformedFrame("an integer out of range")
        return obj
    if type(obj) is str:
        return clean_text(obj, budget)
    if isinstance(obj, torch.Tensor):
        return _tensor(obj)
    _spend(budget, len(obj) if hasattr(obj, "__len__") else 1)
    if isinstance(obj, dict):
        if not all(type(key) is str for key in obj):
            raise MalformedFrame("a dict key that is not a string")
        return {clean_text(k, budget): plain(v, depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, torch.Size):
        return tuple(int(n) for n in obj)
    if type(obj) in (list, tuple):
        return type(obj)(plain(item, depth + 1, budget) for item in obj)
    raise MalformedFrame(f"unexpected data of type {type(obj).__name__}")


def _tensor(t: torch.Tensor) -> torch.Tensor:
    if t.layout != torch.strided or t.dtype not in TENSOR_TYPES or t.is_quantized:
        raise MalformedFrame(f"a tensor of an unexpected kind ({t.dtype}, {t.layout})")
    return torch.Tensor(t.detach()) if type(t) is not torch.Tensor else t.detach()


def clean_text(text: str, budget: list | None = None) -> str:
    """One line of printable text, at most MAX_TEXT characters."""
    if budget is not None:
        _spend(budget, min(len(text), MAX_TEXT))
    cut = len(text) > MAX_TEXT
    text = text[:MAX_TEXT]
    if text.isprintable():
        return text + ("…" if cut else "")
    out = [LINE_BREAKS.get(ch) or ("\ufffd" if unicodedata.category(ch) in UNPRINTABLE else ch)
           for ch in text]
    return "".join(out) + ("…" if cut else "")


def _spend(budget: list, n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise MalformedFrame(f"more than {MAX_ITEMS} items or characters in one reply")
