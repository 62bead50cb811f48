"""The microsite: server-rendered pages, static JS modules and CSS, no build step."""

from __future__ import annotations

from comfygate.web.site import install

__all__ = ["install"]
