"""Frame encodings: RGBA image -> bytes for the page, and back (for tests).

Measured on the reference animation (640x480, one line; docs/player.md):

=========  ==========  ========  =========================================
codec      encode      bytes     page decode
=========  ==========  ========  =========================================
raw        ~1.6 ms     ~23 kB    DecompressionStream("deflate") + putImageData
png (1)    ~4 ms       ~25 kB    createImageBitmap (off the main thread)
jpeg (85)  ~0.5 ms     ~19 kB    createImageBitmap; lossy, blurs thin lines
xor delta  ~1.7 ms     ~20 kB    needs the previous frame: breaks random access
=========  ==========  ========  =========================================

``raw`` (RGBA rows deflated by zlib at level 1) is the lossless default: the
fastest to encode by far, about as small as PNG for plots, and zlib's C code
releases the GIL, so it overlaps with drawing the next frame. Frame deltas
saved ~12% on a line plot and would tie every frame to its predecessor in a
cache the page evicts and revisits freely, so they are not used.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

CODECS = ("auto", "png", "jpeg", "raw")
RAW_LEVEL = 1
PNG_LEVEL = 1


@dataclass(frozen=True)
class Encoded:
    codec: str  # "raw", "png" or "jpeg": what the page must decode
    width: int
    height: int
    data: bytes


def resolve(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}; not {codec!r}")
    return "raw" if codec == "auto" else codec


def encode(rgba: np.ndarray, codec: str = "auto", quality: int = 85) -> Encoded:
    """Encode an RGBA uint8 image ``(H, W, 4)``."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an RGBA uint8 image (H, W, 4), got {rgba.dtype} {rgba.shape}")
    height, width = int(rgba.shape[0]), int(rgba.shape[1])
    kind = resolve(codec)
    if kind == "raw":
        return Encoded("raw", width, height, zlib.compress(np.ascontiguousarray(rgba).data, RAW_LEVEL))
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    out = io.BytesIO()
    if kind == "png":
        image.save(out, format="png", compress_level=PNG_LEVEL)
    else:
        quality = int(min(max(quality, 1), 100))
        image.convert("RGB").save(out, format="jpeg", quality=quality)
    return Encoded(kind, width, height, out.getvalue())


def decode(encoded: Encoded) -> np.ndarray:
    """The RGBA image ``(H, W, 4)`` the page would paint."""
    if encoded.codec == "raw":
        flat = np.frombuffer(zlib.decompress(encoded.data), dtype=np.uint8)
        pixels: np.ndarray = flat.reshape(encoded.height, encoded.width, 4).copy()
        return pixels
    from PIL import Image

    with Image.open(io.BytesIO(encoded.data)) as image:
        rgba: np.ndarray = np.array(image.convert("RGBA"), dtype=np.uint8)
        return rgba


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG for the static ``image/png`` fallback (smaller: compression level 6)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(out, format="png", compress_level=6)
    return out.getvalue()
