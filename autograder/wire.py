"""The private channel between the grader and its sandbox child.

Requests go down as JSON lines. Replies come up as frames: MAGIC, an 8-byte length, then a
`torch.save` payload that the grader reads with `weights_only=True` (tensors and plain
containers only, so a forged reply cannot run code in the grader).
"""
from __future__ import annotations

import io
import os
import struct

import torch

MAGIC = b"AGF1"
HEADER = struct.Struct(">4sQ")
MAX_FRAME = 512 * 2 ** 20


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
    """Accumulates bytes; `pop()` returns the next complete object or None."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pop(self):
        if len(self.buffer) < HEADER.size:
            return None
        magic, size = HEADER.unpack_from(self.buffer)
        if magic != MAGIC or size > MAX_FRAME:
            raise MalformedFrame("bad frame header")
        end = HEADER.size + size
        if len(self.buffer) < end:
            return None
        payload = bytes(self.buffer[HEADER.size:end])
        del self.buffer[:end]
        try:
            return torch.load(io.BytesIO(payload), weights_only=True)
        except Exception as error:
            raise MalformedFrame(f"unreadable frame: {type(error).__name__}") from error
