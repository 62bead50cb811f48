"""Images the upload and sanitising tests send, made in memory."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825


def png(w: int = 8, h: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A few dozen bytes whose header declares ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


# A GIF frame of one pixel: LZW code size 2, then clear, index 0, end of information.
_GIF_PIXEL = b"\x02\x02\x44\x01\x00"


def bomb_gif(width: int = 9000, height: int = 9000) -> bytes:
    """A 1x1 screen and first frame, then a frame declaring ``width`` x ``height``: the
    header says 1x1, and Pillow grows the canvas when it reaches the second frame."""

    def frame(w: int, h: int) -> bytes:
        return b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + _GIF_PIXEL

    screen = struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    return b"GIF89a" + screen + frame(1, 1) + b"\x7f" + frame(width, height) + b";"


def bomb_apng(width: int = 9000, height: int = 9000) -> bytes:
    """A 1x1 APNG whose second fcTL declares ``width`` x ``height``."""

    def fctl(seq: int, w: int, h: int) -> bytes:
        return _chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0))

    pixel = zlib.compress(b"\0\0\0\0")
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + _chunk(b"acTL", struct.pack(">II", 2, 0))
        + fctl(0, 1, 1)
        + _chunk(b"IDAT", pixel)
        + fctl(1, width, height)
        + _chunk(b"fdAT", struct.pack(">I", 2) + pixel)
        + _chunk(b"IEND", b"")
    )


def bomb_webp(width: int = 9000, height: int = 9000) -> bytes:
    """An animated 1x1 WebP from Pillow whose second ANMF frame is made to declare
    ``width`` x ``height``."""
    frames = [Image.new("RGB", (1, 1), (255 * i, 0, 0)) for i in range(2)]
    data = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    anmf = [i for i in range(12, len(data) - 4) if data[i : i + 4] == b"ANMF"]
    assert len(anmf) == 2
    body = anmf[1] + 8
    data[body + 6 : body + 12] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(
        3, "little"
    )
    return bytes(data)
