"""Image bytes for the ticket tests: a real PNG (zlib, no imaging library) and a baseline JPEG."""
from __future__ import annotations

import base64

from app.utils.images import png_bytes  # noqa: F401  (re-exported for the tests)


#: The start of a 1x1 JFIF JPEG stream (SOI, APP0, quantisation table, frame header).
JPEG_1X1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////"
    "////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA="
)


def jpeg_bytes(padding: int = 0) -> bytes:
    """The 1x1 JPEG, optionally followed by `padding` bytes after its end (to reach a size)."""
    return JPEG_1X1 + b"\x00" * padding
