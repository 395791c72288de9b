"""Frame encodings: RGBA image -> bytes for the page, and back (for tests).

Measured on the reference animation (640x480, one line; docs/player.md), with
the page's CPU per frame (decode + paint, all Chromium processes, same run):

=========  ==========  ========  ===============================================
codec      encode      bytes     page decode (CPU per frame)
=========  ==========  ========  ===============================================
png        ~1.6 ms     ~22 kB    createImageBitmap, off the main thread (~1.6 ms)
raw        ~1.6 ms     ~22 kB    DecompressionStream + putImageData (~6 ms)
jpeg (85)  ~0.5 ms     ~18 kB    createImageBitmap (~2 ms); lossy, blurs lines
xor delta  ~1.7 ms     ~20 kB    needs the previous frame: breaks random access
=========  ==========  ========  ===============================================

``png`` (the default, ``auto``) is written here, not by Pillow: RGBA rows with
PNG filter 0 (none) deflated by zlib at level 1, i.e. the ``raw`` bytes plus
one byte per row and ~60 bytes of framing. That costs the kernel what ``raw``
costs (zlib's C code releases the GIL, so it overlaps with drawing the next
frame), and lets the browser decode it with its image decoder on a worker
thread into an ImageBitmap: no main-thread inflate, no 1.2 MB ``ImageData``
per frame for the garbage collector. Pillow's PNG (adaptive filters) was ~4x
slower to encode and no smaller for plots. Frame deltas saved ~12 % on a line
plot and would tie every frame to its predecessor in a cache the page evicts
and revisits freely, so they are not used.

Deflate is ISA-L's (the ``isal`` package, in the ``player`` extra) when it is
installed, zlib's otherwise: the same zlib stream format, 10-20x faster at
level 1 and no larger (a 1280x960 plot frame, a page at devicePixelRatio 2:
~1.1 ms and 59 kB vs zlib's ~15 ms and 65 kB; 640x480: 0.3 vs 5.9 ms, same
run on a loaded machine). Both release the GIL.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # ISA-L's deflate: zlib's format, an order of magnitude faster
    from isal import isal_zlib as _deflater
except ImportError:  # pragma: no cover - the player extra installs it
    _deflater = zlib  # type: ignore[assignment,misc]

CODECS = ("auto", "png", "jpeg", "raw")
#: The deflate in use: "isal" or "zlib".
DEFLATE = "isal" if _deflater is not zlib else "zlib"


def _deflate(data: memoryview, level: int) -> bytes:
    """zlib-format deflate at ``level``: ISA-L's for its levels (0-3), zlib's above."""
    if level <= 3:
        return bytes(_deflater.compress(data, level))
    return zlib.compress(data, level)


RAW_LEVEL = 1
PNG_LEVEL = 1


@dataclass(frozen=True)
class Encoded:
    codec: str  # "raw", "png", "jpeg" or "indexed" (see indexed()): what the page must decode
    width: int
    height: int
    data: bytes


#: What to install for the optional parts of the Player (matplotlib figures, Pillow's JPEG).
PLAYER_EXTRA = 'pip install "ipybridge[player]"'


def missing_extra(what: str, module: str) -> ModuleNotFoundError:
    """The error for a feature of the ``[player]`` extra whose module ``module`` is not installed."""
    return ModuleNotFoundError(f"{what} needs {module}, which is not installed: {PLAYER_EXTRA}", name=module)


def pillow() -> Any:
    """Pillow's ``PIL.Image`` module, or a :class:`ModuleNotFoundError` naming the ``[player]`` extra."""
    try:
        from PIL import Image
    except ModuleNotFoundError as exc:
        raise missing_extra('codec="jpeg"', "Pillow") from exc
    return Image


def resolve(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}; not {codec!r}")
    return "png" if codec == "auto" else codec


def encode(rgba: np.ndarray, codec: str = "auto", quality: int = 85) -> Encoded:
    """Encode an RGBA uint8 image ``(H, W, 4)``."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an RGBA uint8 image (H, W, 4), got {rgba.dtype} {rgba.shape}")
    height, width = int(rgba.shape[0]), int(rgba.shape[1])
    kind = resolve(codec)
    if kind == "raw":
        return Encoded("raw", width, height, _deflate(np.ascontiguousarray(rgba).data, RAW_LEVEL))
    if kind == "png":
        return Encoded("png", width, height, fast_png(rgba, PNG_LEVEL))
    Image = pillow()  # noqa: N806 - the module's own name
    out = io.BytesIO()
    quality = int(min(max(quality, 1), 100))
    Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").save(out, format="jpeg", quality=quality)
    return Encoded(kind, width, height, out.getvalue())


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _crc32(data: bytes, crc: int) -> int:
    # In pieces below the 5 kB above which zlib.crc32 releases the GIL: a few
    # microseconds of work are not worth waiting up to a switch interval
    # (5 ms) to get the GIL back from the thread drawing the next frame.
    view = memoryview(data)
    for start in range(0, len(view), 4096):
        crc = zlib.crc32(view[start : start + 4096], crc)
    return crc


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", _crc32(data, zlib.crc32(tag)))


def fast_png(rgba: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """An 8-bit RGBA PNG of ``rgba`` with filter 0 on every row, deflated at ``level``."""
    height, width = int(rgba.shape[0]), int(rgba.shape[1])
    rows = np.empty((height, width * 4 + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "none"
    rows[:, 1:] = rgba.reshape(height, width * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, deflate, no interlace
    return b"".join(
        (_PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", _deflate(rows.data, level)),
         _png_chunk(b"IEND", b""))
    )  # fmt: skip


def indexed_png(indices: np.ndarray, palette: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """An 8-bit palette PNG: ``indices`` uint8 ``(H, W)`` into ``palette`` uint8 ``(n <= 256, 4)`` (RGBA).

    A colour-mapped frame has at most 256 colours: one byte per pixel to compress
    instead of four, so it encodes ~3-4x faster and smaller than RGBA, and the
    browser's decoder expands it back to exactly ``palette[indices]``.
    """
    height, width = int(indices.shape[0]), int(indices.shape[1])
    if indices.dtype != np.uint8 or palette.dtype != np.uint8 or not 1 <= len(palette) <= 256:
        raise ValueError("indexed_png takes uint8 indices and a uint8 palette of 1..256 RGBA entries")
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "none"
    rows[:, 1:] = indices
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8 bits, palette, deflate, no interlace
    chunks = [
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"PLTE", np.ascontiguousarray(palette[:, :3]).tobytes()),
    ]
    alpha = palette[:, 3]
    if (alpha != 255).any():
        last = int(np.nonzero(alpha != 255)[0][-1]) + 1  # entries after the last translucent one default to opaque
        chunks.append(_png_chunk(b"tRNS", alpha[:last].tobytes()))
    chunks += [_png_chunk(b"IDAT", _deflate(rows.data, level)), _png_chunk(b"IEND", b"")]
    return b"".join(chunks)


#: A colour-mapped frame's indices are deflated for the page only when that saves at least this share.
INDEXED_DEFLATE_SAVING = 0.25


def indexed(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """A colour-mapped frame as the page's ``indexed`` codec: cheaper to decode than a PNG.

    Layout: 4 header bytes (palette entries - 1, flags, 0, 0), the palette as ``n`` RGBA
    quadruplets, then the ``H * W`` indices, row by row: as they are, or, with flag bit 0,
    zlib-deflated (ISA-L level 1) when that makes them at least
    :data:`INDEXED_DEFLATE_SAVING` smaller (smooth fields shrink 3-10x; sensor noise
    does not, and is sent as is). The page looks each index up in the palette into an
    ``ImageData`` (a few tenths of a ms for 512 x 512): no image decoder, no Blob.
    The pixels are exactly ``palette[indices]``, as in :func:`indexed_png`.
    """
    if indices.dtype != np.uint8 or palette.dtype != np.uint8 or not 1 <= len(palette) <= 256:
        raise ValueError("indexed takes uint8 indices and a uint8 palette of 1..256 RGBA entries")
    raw = np.ascontiguousarray(indices)
    packed = _deflate(raw.data, RAW_LEVEL)
    deflated = len(packed) <= (1 - INDEXED_DEFLATE_SAVING) * raw.nbytes
    header = bytes((len(palette) - 1, 1 if deflated else 0, 0, 0))
    return b"".join((header, np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), packed if deflated else raw.data))


def decode(encoded: Encoded) -> np.ndarray:
    """The RGBA image ``(H, W, 4)`` the page would paint."""
    if encoded.codec == "indexed":
        data = encoded.data
        n = data[0] + 1
        palette = np.frombuffer(data, np.uint8, 4 * n, 4).reshape(n, 4)
        body = data[4 + 4 * n :]
        flat = np.frombuffer(zlib.decompress(body) if data[1] & 1 else body, np.uint8)
        return palette[flat.reshape(encoded.height, encoded.width)]
    if encoded.codec == "raw":
        flat = np.frombuffer(zlib.decompress(encoded.data), dtype=np.uint8)
        pixels: np.ndarray = flat.reshape(encoded.height, encoded.width, 4).copy()
        return pixels
    from PIL import Image

    with Image.open(io.BytesIO(encoded.data)) as image:
        rgba: np.ndarray = np.array(image.convert("RGBA"), dtype=np.uint8)
        return rgba


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG for the static ``image/png`` fallback (smaller: compression level 6); needs no Pillow."""
    return fast_png(np.ascontiguousarray(rgba), 6)
