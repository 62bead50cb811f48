"""FastAPI routers: the public v1 API and the signed file routes."""

from __future__ import annotations
