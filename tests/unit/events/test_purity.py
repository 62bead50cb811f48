from __future__ import annotations

import subprocess
import sys

#: what no module of ``comfygate.events`` may pull in, directly or not
FORBIDDEN = ("fastapi", "starlette", "httpx")
OUTER = ("comfygate.store", "comfygate.api", "comfygate.gateway")


def test_streams_import_no_web_framework_and_no_outer_layer() -> None:
    """The streams are plain iterators that the router frames and unit tests read; the
    store is a port to them (the PostgreSQL broker, an adapter, may use SQLAlchemy)."""
    script = f"""
import importlib, pkgutil, sys
import comfygate.events as package
for found in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"comfygate.events.{{found.name}}")
print(sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r} or m.startswith({OUTER!r})))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
