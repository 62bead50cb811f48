"""The Redis on this machine, for the broker tests: skipped when it does not answer,
except under CI, where a missing Redis fails."""

from __future__ import annotations

import os

import pytest
import redis

REDIS_URL = os.environ.get("COMFYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        why = f"Redis at {REDIS_URL} does not answer: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    finally:
        client.close()
