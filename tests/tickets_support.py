"""Image bytes for the ticket tests: a real PNG (zlib, no imaging library) and a baseline JPEG."""
from __future__ import annotations

import base64
import struct
import zlib


def png_bytes(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


#: The start of a 1x1 JFIF JPEG stream (SOI, APP0, quantisation table, frame header).
JPEG_1X1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////"
    "////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA="
)


def jpeg_bytes(padding: int = 0) -> bytes:
    """The 1x1 JPEG, optionally followed by `padding` bytes after its end (to reach a size)."""
    return JPEG_1X1 + b"\x00" * padding
