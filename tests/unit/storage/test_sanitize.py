"""Hostile pictures: bombs, impostors, polyglots and metadata."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageFile, PngImagePlugin, WebPImagePlugin

from comfygate.errors import InvalidUpload
from comfygate.storage import sanitize
from comfygate.storage.sanitize import ImageLimits, sanitize_image
from tests.images import GPS_IFD, bomb_apng, bomb_gif, bomb_png, bomb_webp, encode

LIMITS = ImageLimits(
    max_bytes=200_000, max_pixels=64 * 64, max_frames=8, formats=("PNG", "JPEG", "GIF", "WEBP")
)
ORIENTATION = 0x0112


def refused(data: bytes, limits: ImageLimits = LIMITS) -> InvalidUpload:
    with pytest.raises(InvalidUpload) as err:
        sanitize_image(data, limits)
    return err.value


@pytest.mark.parametrize("size", [(100_000, 100_000), (65, 65), (2**31 - 1, 1)])
def test_a_small_file_declaring_a_huge_size_is_refused_before_decoding(
    size: tuple[int, int],
) -> None:
    data = bomb_png(*size)
    assert len(data) < 200
    error = refused(data)
    assert error.status_code == 422
    assert error.details[0]["path"] == "/file" and error.details[0]["keyword"] == "maximum"


def test_too_many_frames_are_refused() -> None:
    frames = [Image.new("RGB", (4, 4), (i * 25, 0, 0)) for i in range(10)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 10
    assert "frames" in refused(data).message


def test_frames_share_the_pixel_budget() -> None:
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(5)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert "in 5 frames" in refused(data).message


def test_more_bytes_than_allowed_are_refused_unread() -> None:
    error = refused(b"\0" * (LIMITS.max_bytes + 1))
    assert error.details[0]["path"] == "/bytes"


@pytest.mark.parametrize(
    "data",
    [
        encode(Image.new("RGB", (8, 8)), "BMP"),
        encode(Image.new("RGB", (8, 8)), "TIFF"),
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<!DOCTYPE html><script>alert(1)</script>",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"GIF89a<script>alert(1)</script>",  # a GIF header glued to script
        bomb_png(8, 8)[:40],  # truncated
    ],
)
def test_other_formats_and_broken_files_are_refused(data: bytes) -> None:
    error = refused(data)
    assert error.details[0]["path"] == "/file" and error.details[0]["keyword"] == "format"


def test_a_format_left_out_of_the_settings_is_refused() -> None:
    limits = ImageLimits(max_bytes=10_000, max_pixels=4096, max_frames=1, formats=("PNG",))
    error = refused(encode(Image.new("RGB", (8, 8)), "JPEG"), limits)
    assert "format JPEG is not allowed" in error.message


def test_a_polyglot_keeps_only_its_picture() -> None:
    png = encode(Image.new("RGB", (8, 6), (200, 10, 10)), "PNG")
    payload = b"PK\x03\x04" + b"<?php system($_GET['c']); ?>" * 4
    clean = sanitize_image(png + payload, LIMITS)
    assert (clean.format, clean.width, clean.height) == ("PNG", 8, 6)
    assert b"PK\x03\x04" not in clean.data and b"php" not in clean.data
    assert Image.open(io.BytesIO(clean.data)).getpixel((0, 0)) == (200, 10, 10)


def test_exif_gps_and_comments_are_gone_and_orientation_is_applied() -> None:
    img = Image.new("RGB", (16, 8), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # left half red
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90° clockwise to view"
    exif[0x010F] = "SpyCam"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    data = encode(img, "JPEG", exif=exif.tobytes(), comment=b"secret note", quality=95)
    before = Image.open(io.BytesIO(data))
    assert before.getexif().get_ifd(GPS_IFD)

    clean = sanitize_image(data, LIMITS)
    after = Image.open(io.BytesIO(clean.data))
    assert not after.getexif() and "exif" not in after.info and "comment" not in after.info
    assert b"SpyCam" not in clean.data and b"secret note" not in clean.data
    assert (clean.width, clean.height) == (8, 16)  # drawn upright
    red = after.getpixel((4, 2))
    assert isinstance(red, tuple) and red[0] > 200 and red[2] < 60


def test_png_text_chunks_and_icc_profiles_are_gone() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address")
    info.add_text("prompt", '{"3": {"class_type": "KSampler"}}')  # a ComfyUI workflow
    info.add_itxt("Author", "someone", zip=True)
    data = encode(
        Image.new("RGBA", (8, 8), (1, 2, 3, 128)),
        "PNG",
        pnginfo=info,
        icc_profile=b"fake icc profile text",
    )
    clean = sanitize_image(data, LIMITS)
    after = Image.open(io.BytesIO(clean.data))
    assert after.info == {} or set(after.info) <= {"dpi"}
    for secret in (b"home address", b"KSampler", b"someone", b"iCCP", b"tEXt", b"iTXt"):
        assert secret not in clean.data
    assert after.mode == "RGBA" and after.getpixel((0, 0)) == (1, 2, 3, 128)


def test_animations_keep_their_frames_and_timing() -> None:
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    for f in frames:
        f.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    data = encode(
        frames[0],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=70,
        loop=0,
        comment=b"hidden",
    )
    clean = sanitize_image(data, LIMITS)
    assert clean.frames == 3 and clean.format == "GIF" and b"hidden" not in clean.data
    after = Image.open(io.BytesIO(clean.data))
    assert getattr(after, "n_frames", 1) == 3 and after.info.get("duration") == 70


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("CMYK", "JPEG"),
        ("L", "JPEG"),
        ("P", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "WEBP"),
        ("I;16", "PNG"),
    ],
)
def test_common_modes_survive_in_their_format(mode: str, fmt: str) -> None:
    clean = sanitize_image(encode(Image.new(mode, (8, 8)), fmt), LIMITS)
    assert clean.format == fmt and Image.open(io.BytesIO(clean.data)).size == (8, 8)


class DecodedPastTheLimit(BaseException):
    """Not an Exception: sanitize_image must not turn it into a refusal."""


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every image Pillow decodes; one past LIMITS stops the test at once
    rather than take gigabytes."""
    seen: list[tuple[int, int]] = []

    def guarded(load: Any) -> Any:
        def spy(self: Image.Image) -> Any:
            seen.append(self.size)
            if self.size[0] * self.size[1] > LIMITS.max_pixels:
                raise DecodedPastTheLimit(self.size)
            return load(self)

        return spy

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded(ImageFile.ImageFile.load))
    webp = WebPImagePlugin.WebPImageFile
    monkeypatch.setattr(webp, "load", guarded(webp.load))
    return seen


@pytest.mark.parametrize("bomb", [bomb_gif, bomb_apng, bomb_webp])
def test_a_later_frame_declaring_a_huge_size_is_refused_before_decoding(
    bomb: Callable[[], bytes], decodes: list[tuple[int, int]]
) -> None:
    data = bomb()
    assert Image.open(io.BytesIO(data)).size == (1, 1)  # the header alone passes
    error = refused(data)
    assert error.details[0]["path"] == "/file" and error.details[0]["keyword"] == "maximum"
    assert "9000x9000" in error.message
    assert all(w * h <= LIMITS.max_pixels for w, h in decodes)


def test_frames_are_measured_as_pillow_reads_them_too(
    monkeypatch: pytest.MonkeyPatch, decodes: list[tuple[int, int]]
) -> None:
    # A container the walk does not know must still be measured frame by frame.
    monkeypatch.setattr(sanitize, "canvases", lambda data: iter(()))
    error = refused(bomb_gif())
    assert error.details[0]["keyword"] == "maximum" and "9000x9000" in error.message
    assert set(decodes) == {(1, 1)}


def test_small_animations_pass_the_frame_walk() -> None:
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    for fmt in ("GIF", "PNG", "WEBP"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50)
        clean = sanitize_image(data, LIMITS)
        assert (clean.format, clean.frames, clean.width) == (fmt, 3, 8)
