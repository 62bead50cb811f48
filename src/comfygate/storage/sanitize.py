"""An uploaded picture, decoded and drawn anew: only its pixels survive.

A file a stranger sends is hostile until decoded: it may declare a size that would
take gigabytes to decode (a decompression bomb), be another format wearing an image's
name, carry a second file after its last chunk (a polyglot), or hold metadata the
uploader did not mean to publish (EXIF GPS, text chunks). So the header is read first
and measured; only a file within the limits is decoded, and what is kept is the
decoded pixels re-encoded by Pillow: no metadata, no trailing bytes. The ICC profile is
dropped too: ComfyUI's LoadImage ignores it, and its text is metadata like any other.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, ImageSequence

from comfygate.errors import InvalidUpload
from comfygate.storage.frames import canvases

FORMAT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}

#: modes each format writes as they are; anything else is converted first
_KEEP_MODES = {
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"},
    "GIF": {"L", "P", "RGB", "RGBA"},
    "JPEG": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
}

#: JPEG and WebP cannot be copied losslessly; quality 95 keeps what the eye sees
_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    max_frames: int
    formats: tuple[str, ...]


@dataclass(frozen=True)
class CleanImage:
    """The re-encoded file and what was measured."""

    data: bytes
    format: str
    width: int
    height: int
    frames: int

    @property
    def content_type(self) -> str:
        return FORMAT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def field_error(field: str, message: str, keyword: str = "invalid") -> InvalidUpload:
    return InvalidUpload(
        message, details=[{"path": f"/{field}", "message": message, "keyword": keyword}]
    )


def sanitize_image(data: bytes, limits: ImageLimits) -> CleanImage:
    """Decode ``data`` within ``limits`` and re-encode it in its own format, without
    metadata. Raises InvalidUpload naming ``/bytes`` or ``/file``."""
    if len(data) > limits.max_bytes:
        raise field_error("bytes", f"the file is larger than {limits.max_bytes} bytes", "maximum")
    spent = 0
    for n, size in enumerate(canvases(data), 1):
        spent = _spend(spent, n, size, limits)
    try:
        with warnings.catch_warnings():
            # Pillow warns past Image.MAX_IMAGE_PIXELS and raises past twice that, as the
            # header is read; a warning here is a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return _redraw(img, limits)
    except InvalidUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise field_error("file", "the image declares too many pixels", "maximum") from None
    except Exception:
        # Truncated, corrupt, or a text chunk past Pillow's own limits: all unreadable.
        raise field_error("file", "the file is not a readable image", "format") from None


def _redraw(img: Image.Image, limits: ImageLimits) -> CleanImage:
    fmt = img.format or ""
    if fmt not in limits.formats or fmt not in FORMAT_TYPES:
        allowed = [f for f in limits.formats if f in FORMAT_TYPES]
        raise field_error(
            "file", f"format {fmt or 'unknown'} is not allowed; use one of {allowed}", "format"
        )
    # Measured from the header, before a single pixel is decoded. The frames of an
    # animation become one batch in ComfyUI, so they share the pixel budget.
    width, height = img.size
    frames = int(getattr(img, "n_frames", 1))
    if frames > limits.max_frames:
        raise field_error(
            "file", f"{frames} frames exceed the limit of {limits.max_frames}", "maximum"
        )
    if width * height * frames > limits.max_pixels:
        size = f"{width}x{height}" + (f" in {frames} frames" if frames > 1 else "")
        raise field_error("file", f"{size} exceeds {limits.max_pixels} pixels", "maximum")
    drawn: list[Image.Image] = []
    durations: list[int] = []
    spent = 0
    for n, frame in enumerate(ImageSequence.Iterator(img), 1):
        # Measured again as Pillow reads each frame's header, before its pixels: the walk
        # above knows three containers, this knows whatever Pillow reads.
        spent = _spend(spent, n, frame.size, limits)
        durations.append(int(frame.info.get("duration", 0) or 0))
        drawn.append(_pixels(frame, fmt))
    options: dict[str, Any] = dict(_ENCODER_OPTIONS.get(fmt, {}))
    if len(drawn) > 1:
        options |= {"save_all": True, "append_images": drawn[1:], "duration": durations}
        if "loop" in img.info:
            options["loop"] = int(img.info["loop"])
    out = io.BytesIO()
    first = drawn[0]
    first.save(out, fmt, **options)
    return CleanImage(
        data=out.getvalue(), format=fmt, width=first.width, height=first.height, frames=len(drawn)
    )


def _spend(spent: int, n: int, size: tuple[int, int], limits: ImageLimits) -> int:
    """The pixels of frames 1 to ``n``, given ``spent`` on those before it and frame
    ``n``'s canvas; refused as soon as a limit is passed, so one upload never holds
    more than ``max_pixels`` decoded pixels (4 bytes each, twice while redrawn)."""
    if n > limits.max_frames:
        raise field_error("file", f"more than {limits.max_frames} frames", "maximum")
    width, height = size
    spent += width * height
    if spent > limits.max_pixels:
        what = f"{width}x{height}" if n == 1 else f"{spent} pixels in {n} frames"
        where = "" if n == 1 else f" (frame {n} is drawn at {width}x{height})"
        raise field_error("file", f"{what} exceeds {limits.max_pixels} pixels{where}", "maximum")
    return spent


def _pixels(frame: Image.Image, fmt: str) -> Image.Image:
    """The frame's pixels in a fresh image: upright (EXIF orientation applied, since the
    tag that says how is about to go), in a mode ``fmt`` writes, with no ``info`` but
    the palette's transparency."""
    upright = ImageOps.exif_transpose(frame)
    if upright.mode not in _KEEP_MODES[fmt]:
        alpha = "A" in upright.getbands() or "transparency" in upright.info
        upright = upright.convert("RGBA" if alpha and fmt != "JPEG" else "RGB")
    clean = upright.copy()
    transparency = upright.info.get("transparency")
    clean.info = {} if transparency is None else {"transparency": transparency}
    return clean
