from __future__ import annotations

from comfygate.cli import app

app()
