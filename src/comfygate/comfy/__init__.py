"""The ComfyUI protocol client. Nothing else talks to ComfyUI; it knows nothing of jobs."""

from __future__ import annotations
