"""Headers for every stored file the gateway serves on its own origin.

An output is whatever a worker or a custom node wrote: an ``.html`` or ``.svg`` file
opened inline would run its script with the gateway's cookies. So no file is sniffed
into another type, none may run script or load anything (a sandboxing CSP), and only
types a browser cannot execute are shown inline; everything else is a download."""

from __future__ import annotations

import re

from comfygate.storage.inline import is_inline

#: ``sandbox`` gives the document an opaque origin and no script; the sources let an
#: image or a video shown inline load itself and the browser's own viewer style it
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"
)

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def served_headers(name: str, content_type: str) -> dict[str, str]:
    """``X-Content-Type-Options``, ``Content-Security-Policy`` and a
    ``Content-Disposition`` that is ``inline`` only for ``content_type``s that cannot
    run script; ``name`` is reduced to characters safe in the header."""
    disposition = "inline" if is_inline(content_type) else "attachment"
    filename = _UNSAFE_NAME_CHARS.sub("_", name) or "file"
    return {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
    }
