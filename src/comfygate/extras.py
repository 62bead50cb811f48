"""Optional dependencies: which extra a setting needs, and one line when it is missing.

The default install runs the demo: SQLite, files on disk, one gateway. PostgreSQL,
Redis and S3 each bring client libraries of their own, installed as the extras
``postgres``, ``redis`` and ``s3``; a gateway configured for one without its extra
stops before it opens or migrates anything, naming the extra to install."""

from __future__ import annotations

import importlib

from sqlalchemy.engine import make_url

from comfygate.config import Settings
from comfygate.errors import MissingExtra

#: the top-level modules each extra installs
MODULES: dict[str, tuple[str, ...]] = {
    "postgres": ("asyncpg",),
    "redis": ("redis",),
    "s3": ("obstore", "botocore"),
}


def require(extra: str, setting: str) -> None:
    """Raise MissingExtra unless every module of ``extra`` imports."""
    for module in MODULES[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(extra, setting) from None


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def check(settings: Settings) -> None:
    """Every extra the settings need is installed (else MissingExtra for the first)."""
    if is_postgres(settings.db_url):
        require("postgres", "database_url")
    if settings.broker_url:
        require("redis", "broker_url")
    if settings.storage_url:
        require("s3", "storage_url")
