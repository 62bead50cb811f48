"""Object storage: a small port (``base.Storage``) and its adapters."""

from __future__ import annotations
