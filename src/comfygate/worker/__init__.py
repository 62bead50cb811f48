"""The worker agent: lease → run on ComfyUI → report → upload outputs.

Uses ``comfy/``, ``storage/`` and the worker protocol; never the database.
"""

from __future__ import annotations
