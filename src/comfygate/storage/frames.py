"""The frames an animated picture declares, read from its container, not decoded.

Pillow measures a picture as its header is read, but reads an animation's later frames
only as it reaches them, and allocates each one as it goes: a GIF's canvas grows to fit
any frame, so a file with a 1x1 screen may declare a 9000x9000 second frame (issue 15).
So the frame headers of GIF, PNG (APNG) and WebP are walked here over the raw bytes,
skipping the pixel data by its declared lengths, before Pillow decodes anything.

Each frame is measured as the canvas it is drawn on: Pillow composes every frame onto a
canvas of the whole picture, grown (GIF) to fit the frame. A file cut short or malformed
ends the walk; decoding it fails later, as it would have.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def canvases(data: bytes) -> Iterator[tuple[int, int]]:
    """The (width, height) of the canvas each frame of ``data`` is drawn on, in order;
    nothing for formats not walked here (a still picture's header says it all)."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:8] == PNG_SIGNATURE:
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return iter(())


def _color_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _after_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if not size:
            break
    return pos


def _gif(data: bytes) -> Iterator[tuple[int, int]]:
    if len(data) < 13:
        return
    width, height = struct.unpack_from("<HH", data, 6)
    pos = 13 + _color_table(data[10])
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _after_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            if pos + 10 > len(data):
                return
            left, top, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            width, height = max(width, left + w), max(height, top + h)
            yield width, height
            # then the local color table, the LZW code size, the sub-blocks of pixels
            pos = _after_sub_blocks(data, pos + 10 + _color_table(flags) + 1)
        else:
            # Pillow skips a byte it does not know and reads on: so must this walk,
            # or a stray byte would hide the frames after it.
            pos += 1


def _png(data: bytes) -> Iterator[tuple[int, int]]:
    canvas = (0, 0)
    framed = False  # an fcTL came before the image data: the default image is frame 1
    seen_idat = False
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = pos + 8
        if kind == b"IHDR" and body + 8 <= len(data):
            canvas = struct.unpack_from(">II", data, body)
        elif kind == b"fcTL" and body + 20 <= len(data):
            framed = True
            w, h, x, y = struct.unpack_from(">IIII", data, body + 4)
            yield max(canvas[0], x + w), max(canvas[1], y + h)
        elif kind == b"IDAT" and not seen_idat:
            seen_idat = True
            if not framed:  # a still picture, or an APNG's default image apart
                yield canvas
        elif kind == b"IEND":
            return
        pos = body + length + 4  # and the CRC


def _u24(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 3], "little")


def _webp(data: bytes) -> Iterator[tuple[int, int]]:
    canvas = (0, 0)
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if kind == b"VP8X" and body + 10 <= len(data):
            canvas = (1 + _u24(data, body + 4), 1 + _u24(data, body + 7))
        elif kind == b"ANMF" and body + 12 <= len(data):
            x, y = 2 * _u24(data, body), 2 * _u24(data, body + 3)
            w, h = 1 + _u24(data, body + 6), 1 + _u24(data, body + 9)
            yield max(canvas[0], x + w), max(canvas[1], y + h)
        pos = body + length + (length & 1)  # chunks are padded to an even length
