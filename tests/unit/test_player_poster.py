"""The frame drawn for the output's static picture is also the view's first frame (sent with the state)."""

from __future__ import annotations

import base64

import numpy as np

import ipybridge
from ipybridge.player import codecs


def test_the_static_picture_is_the_first_frame_the_view_paints() -> None:
    video = np.random.default_rng(1).integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    player = ipybridge.Player(video)
    player.frame = 2
    data, _ = player._repr_mimebundle_()
    png = base64.b64decode(data["image/png"])
    assert player._poster == png
    assert player._poster_frame == 2
    assert player._poster_gen == player._generation
    decoded = codecs.decode(codecs.Encoded("png", 8, 6, png))
    assert np.array_equal(decoded[..., :3], video[2])
    assert (decoded[..., 3] == 255).all()
    player.close()
