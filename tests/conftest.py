from __future__ import annotations

from tests.s3server import s3_server

__all__ = ["s3_server"]
