"""SQLAlchemy tables, migrations and the job store. All SQL lives here."""

from __future__ import annotations

from comfygate.store.sql import SqlJobStore, open_store

__all__ = ["SqlJobStore", "open_store"]
