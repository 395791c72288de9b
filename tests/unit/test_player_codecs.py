"""Codecs: decode what you encode; byte for byte for the lossless ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ipybridge.player import codecs

images = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(lambda hw: arrays(np.uint8, (hw[0], hw[1], 4)))


@settings(max_examples=60, deadline=None)
@given(images, st.sampled_from(["auto", "raw", "png"]))
def test_lossless_codecs_round_trip_exactly(rgba, codec):
    encoded = codecs.encode(rgba, codec)
    assert (encoded.width, encoded.height) == (rgba.shape[1], rgba.shape[0])
    assert encoded.codec == ("png" if codec == "auto" else codec)
    decoded = codecs.decode(encoded)
    assert decoded.dtype == np.uint8
    assert decoded.tobytes() == rgba.tobytes()


def test_jpeg_is_close_and_opaque():
    y, x = np.mgrid[0:64, 0:96]
    rgba = np.stack([x * 2, y * 3, (x + y), np.full_like(x, 255)], axis=-1).astype(np.uint8)
    for quality in (50, 95):
        encoded = codecs.encode(rgba, "jpeg", quality)
        assert encoded.codec == "jpeg"
        assert encoded.data[:2] == b"\xff\xd8"
        decoded = codecs.decode(encoded)
        assert decoded.shape == rgba.shape
        assert np.abs(decoded.astype(int) - rgba.astype(int)).mean() < 4
    assert len(codecs.encode(rgba, "jpeg", 30).data) < len(codecs.encode(rgba, "jpeg", 95).data)


def test_raw_is_zlib_deflate_the_browser_decompression_stream_reads():
    import zlib

    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    data = codecs.encode(rgba, "raw").data
    assert data[0] == 0x78  # zlib header: DecompressionStream("deflate")
    assert zlib.decompress(data) == rgba.tobytes()


def test_png_is_filter_none_rgba_the_browser_image_decoder_reads():
    import zlib

    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = codecs.encode(rgba, "png").data
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data.endswith(b"IEND\xaeB`\x82")
    assert data[16:26] == bytes([0, 0, 0, 3, 0, 0, 0, 2, 8, 6])  # 3x2, 8 bits, RGBA
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert zlib.decompress(idat) == b"".join(b"\x00" + row.tobytes() for row in rgba)


def test_png_fallback_and_bad_input():
    rgba = np.full((4, 4, 4), 200, dtype=np.uint8)
    assert codecs.png_bytes(rgba).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="codec"):
        codecs.encode(rgba, "gif")
    with pytest.raises(ValueError, match="RGBA"):
        codecs.encode(rgba[..., :3], "raw")


def test_isal_and_zlib_deflate_give_the_same_pixels(monkeypatch):
    import zlib

    rgba = np.random.default_rng(5).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[5:20, 10:30] = (255, 255, 255, 255)
    assert codecs.DEFLATE == "isal"  # the player extra installs it
    fast = {kind: codecs.encode(rgba, kind) for kind in ("png", "raw")}
    monkeypatch.setattr(codecs, "_deflater", zlib)
    for kind, encoded in fast.items():
        plain = codecs.encode(rgba, kind)
        assert np.array_equal(codecs.decode(encoded), rgba)
        assert np.array_equal(codecs.decode(plain), rgba)
