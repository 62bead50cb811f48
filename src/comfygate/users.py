"""Users signed in by an external identity provider: their JWT is the credential.

The token's signature is checked against the provider's published keys (JWKS, fetched
and cached by PyJWT's ``PyJWKClient``), then its expiry, issuer and audience.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

from comfygate.clock import Clock
from comfygate.config import JwtSettings
from comfygate.principal import Principal

#: what a signed-in user may do: run jobs and read their own
USER_SCOPES = frozenset({"jobs:read", "jobs:write"})
#: asymmetric only: an HS256 token would be "signed" with a public key anyone can read
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512", "EdDSA"]
#: an unknown kid refetches the provider's keys (it may have rotated them), but at most
#: this often: otherwise every forged token would make the gateway call the provider
REFETCH_EVERY_S = 60.0


class InvalidToken(Exception):
    """The JWT is not one this gateway accepts; the message says why."""


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


class JwtUsers:
    def __init__(self, settings: JwtSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._jwks = jwt.PyJWKClient(settings.jwks_url, lifespan=300)
        self._refetched_at: float | None = None

    @classmethod
    def from_settings(cls, settings: JwtSettings, clock: Clock) -> JwtUsers | None:
        return cls(settings, clock) if settings.enabled else None

    def _signing_key(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {k.key_id: k for k in self._jwks.get_signing_keys()}  # cached set
        now = self._clock.monotonic()
        if kid not in keys and (
            self._refetched_at is None or now - self._refetched_at >= REFETCH_EVERY_S
        ):
            self._refetched_at = now
            keys = {k.key_id: k for k in self._jwks.get_signing_keys(refresh=True)}
        if kid not in keys:
            raise InvalidToken(f"no signing key of the provider matches kid {kid!r}")
        return keys[kid]

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            key = self._signing_key(token)
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
