"""The Redis on this machine, for the broker tests (see tests/services.py for a missing one)."""

from __future__ import annotations

import os

import redis

from tests.services import unavailable

REDIS_URL = os.environ.get("COMFYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", f"{REDIS_URL} does not answer: {exc}")
    finally:
        client.close()
