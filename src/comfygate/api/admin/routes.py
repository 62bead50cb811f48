"""Every admin router, for ``api/app.py`` to include in one go."""

from __future__ import annotations

from fastapi import APIRouter

from comfygate.api.admin import events, jobs, ops, session

ROUTERS: tuple[APIRouter, ...] = (session.router, ops.router, jobs.router, events.router)
