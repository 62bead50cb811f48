"""The frame walk agrees with Pillow on honest files and sees what a bomb declares."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from comfygate.storage.frames import canvases
from tests.images import bomb_apng, bomb_gif, bomb_webp, encode


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_walks_as_pillow_counts_it(fmt: str) -> None:
    frames = [Image.new("RGB", (12, 7), (i * 60, 0, 0)) for i in range(3)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert list(canvases(data)) == [(12, 7)] * 3


def test_a_still_png_is_one_frame_however_many_idat_chunks() -> None:
    data = encode(Image.effect_noise((300, 300), 64), "PNG", compress_level=0)
    assert data.count(b"IDAT") > 1
    assert list(canvases(data)) == [(300, 300)]


def test_a_bomb_shows_its_huge_frame() -> None:
    assert list(canvases(bomb_gif())) == [(1, 1), (9000, 9000)]
    assert list(canvases(bomb_apng())) == [(1, 1), (9000, 9000)]
    assert list(canvases(bomb_webp())) == [(1, 1), (9000, 9000)]


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\xff\xd8\xff\xe0", bomb_gif()[:20]])
def test_other_or_cut_files_end_the_walk(data: bytes) -> None:
    assert len(list(canvases(data))) <= 1
