"""The admin token and the signed session cookie it buys.

Sessions are stateless: the cookie carries its expiry and an HMAC. The MAC key is
derived from the signing key *and* the admin token, so rotating the token signs every
session out without a session table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from comfygate.clock import Clock

#: bumped if the cookie layout ever changes, so old cookies fail cleanly
VERSION = "1"


@dataclass(frozen=True)
class Session:
    value: str
    expires_at: datetime
    max_age_s: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class AdminSessions:
    def __init__(self, *, token: str, key: bytes, clock: Clock, ttl_s: int) -> None:
        if not token:
            raise ValueError("the admin token must not be empty")
        self._token_digest = _digest(token)
        self._key = hmac.new(key, b"admin-session\n" + self._token_digest, hashlib.sha256).digest()
        self._clock = clock
        self.ttl_s = ttl_s

    def check_token(self, candidate: str) -> bool:
        """Constant time in the token: digests have one length, whatever was sent."""
        return hmac.compare_digest(_digest(candidate), self._token_digest)

    def _mac(self, exp: str, nonce: str) -> str:
        msg = f"{VERSION}\n{exp}\n{nonce}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(self) -> Session:
        exp = int(self._clock.now().timestamp()) + self.ttl_s
        nonce = secrets.token_urlsafe(12)
        value = f"{VERSION}.{exp}.{nonce}.{self._mac(str(exp), nonce)}"
        return Session(value, datetime.fromtimestamp(exp, UTC), self.ttl_s)

    def verify(self, value: str) -> datetime | None:
        """When the session ends, or None when the cookie is forged, altered or expired."""
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not parts[1].isdigit():
            return None
        _, exp, nonce, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(exp, nonce).encode()):
            return None
        if int(exp) <= self._clock.now().timestamp():
            return None
        return datetime.fromtimestamp(int(exp), UTC)
