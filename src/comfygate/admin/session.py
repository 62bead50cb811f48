"""The admin token and the signed session cookie it buys.

Sessions are stateless: the cookie carries its expiry, the API key it was bought with
(if not the admin token) and an HMAC. The MAC key is derived from the signing key *and*
the admin token, so rotating the token signs every session out without a session table;
revoking the key signs out the sessions bought with it (the caller looks the key up).
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
VERSION = "2"
#: the key-id field of a session bought with the admin token itself
TOKEN = "-"


@dataclass(frozen=True)
class Session:
    value: str
    expires_at: datetime
    max_age_s: int


@dataclass(frozen=True)
class Claims:
    expires_at: datetime
    #: the admin key the session was bought with; None for the admin token
    key_id: str | None


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

    def _mac(self, exp: str, nonce: str, key_id: str) -> str:
        msg = f"{VERSION}\n{exp}\n{nonce}\n{key_id}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(self, key_id: str | None = None) -> Session:
        """A session for the admin token, or for the admin key ``key_id``."""
        exp = int(self._clock.now().timestamp()) + self.ttl_s
        nonce = secrets.token_urlsafe(12)
        kid = key_id or TOKEN
        value = f"{VERSION}.{exp}.{nonce}.{kid}.{self._mac(str(exp), nonce, kid)}"
        return Session(value, datetime.fromtimestamp(exp, UTC), self.ttl_s)

    def claims(self, value: str) -> Claims | None:
        """What a genuine, unexpired cookie says; None when it is forged, altered or
        expired."""
        parts = value.split(".")
        if len(parts) != 5 or parts[0] != VERSION or not parts[1].isdigit():
            return None
        _, exp, nonce, kid, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(exp, nonce, kid).encode()):
            return None
        if int(exp) <= self._clock.now().timestamp():
            return None
        return Claims(datetime.fromtimestamp(int(exp), UTC), None if kid == TOKEN else kid)

    def verify(self, value: str) -> datetime | None:
        """When the session ends, or None when the cookie is forged, altered or expired."""
        found = self.claims(value)
        return found.expires_at if found else None
