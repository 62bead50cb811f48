"""Signed tokens handed to browsers: the visitor cookie and job share links.

Both are ``{value}.{hmac}`` under the gateway's signing key, each with its own purpose
in the MAC so a visitor cookie can never be replayed as a share token or back.
"""

from __future__ import annotations

import hmac
import secrets

from comfygate.ids import is_uuid
from comfygate.storage.signing import Signer

VISITOR_PREFIX = "visitor:"


class Tokens:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def _seal(self, purpose: str, value: str) -> str:
        return f"{value}.{self._signer.token(purpose, value)}"

    def _open(self, purpose: str, token: str) -> str | None:
        value, dot, mac = token.rpartition(".")
        if not dot or not value or not mac:
            return None
        if not hmac.compare_digest(mac, self._signer.token(purpose, value)):
            return None
        return value

    @staticmethod
    def new_visitor_id() -> str:
        # 128 random bits: the cookie's MAC stops forgery, this stops guessing a neighbour.
        return VISITOR_PREFIX + secrets.token_urlsafe(16)

    def visitor_cookie(self, visitor_id: str) -> str:
        return self._seal("visitor", visitor_id)

    def visitor_id(self, cookie: str) -> str | None:
        """The visitor a cookie names, or None if it was not made by this gateway."""
        value = self._open("visitor", cookie)
        if value is None or not value.startswith(VISITOR_PREFIX):
            return None
        return value

    def share_token(self, share_id: str) -> str:
        return self._seal("share", share_id)

    def share_id(self, token: str) -> str | None:
        """The share link a token names, or None for a forged or damaged token."""
        value = self._open("share", token)
        if value is None or not is_uuid(value):
            return None
        return value
