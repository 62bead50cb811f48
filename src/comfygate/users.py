"""Users signed in by an external identity provider: their JWT is the credential.

The token's signature is checked against the provider's published keys (JWKS, fetched
and cached by PyJWT's ``PyJWKClient``), then its expiry, issuer and audience.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

from comfygate.config import JwtSettings
from comfygate.principal import Principal

#: what a signed-in user may do: run jobs and read their own
USER_SCOPES = frozenset({"jobs:read", "jobs:write"})
#: asymmetric only: an HS256 token would be "signed" with a public key anyone can read
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA"]


class InvalidToken(Exception):
    """The JWT is not one this gateway accepts; the message says why."""


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


class JwtUsers:
    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> JwtUsers | None:
        return cls(settings) if settings.enabled else None

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise InvalidToken(str(exc)) from None
        return claims

    async def resolve(self, token: str) -> Principal:
        """The user the token names; raises InvalidToken. The JWKS fetch (rare: keys are
        cached) blocks, so it runs off the event loop."""
        claims = await asyncio.to_thread(self._decode, token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 180:
            raise InvalidToken("the token's sub claim is not a usable user id")
        return Principal(id=f"user:{sub}", kind="user", scopes=USER_SCOPES)
