"""HMAC-signed URLs for the local storage adapter (what S3 presigning does for S3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from comfygate.clock import Clock


class Signer:
    def __init__(self, key: bytes, clock: Clock) -> None:
        self._key = key
        self._clock = clock

    def _mac(self, *parts: str) -> str:
        digest = hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:20]).decode().rstrip("=")

    def sign(self, *parts: str, ttl_s: int) -> tuple[int, str]:
        exp = int(self._clock.now().timestamp()) + ttl_s
        return exp, self._mac(str(exp), *parts)

    def verify(self, sig: str, exp: int, *parts: str) -> bool:
        if exp < self._clock.now().timestamp():
            return False
        return hmac.compare_digest(sig, self._mac(str(exp), *parts))

    def token(self, *parts: str) -> str:
        """A signature with no expiry, e.g. for cookies."""
        return self._mac("token", *parts)

    @staticmethod
    def expires_at(exp: int) -> datetime:
        return datetime.fromtimestamp(exp, UTC)
