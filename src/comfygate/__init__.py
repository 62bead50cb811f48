"""comfygate: the production layer between ComfyUI workflows and the public."""

from __future__ import annotations

__version__ = "0.1.0"
