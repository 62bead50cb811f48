"""Which stored files a browser may show inline: only those that cannot run script.

An output is whatever a worker or a custom node wrote; an ``.html`` or ``.svg`` file
shown inline would run its script on the origin that serves it (the gateway's, or the
bucket's). Every other type is served as a download."""

from __future__ import annotations

#: what a browser renders without running script; SVG is an image that can
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "text/plain"}
)
INLINE_FAMILIES = ("video/", "audio/")


def is_inline(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in INLINE_TYPES or media.startswith(INLINE_FAMILIES)
