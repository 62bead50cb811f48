"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each owner has one secret, derived from the gateway's signing key, so nothing is stored
and every gateway of a deployment signs alike; the owner reads it at
``GET /v1/webhooks/secret``. Changing ``secret_key`` changes every owner's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"
#: keeps this derivation apart from every other use of the signing key
CONTEXT = b"comfygate/webhook-secret/v1\x00"


def owner_secret(signing_key: bytes, owner_id: str) -> str:
    raw = hmac.new(signing_key, CONTEXT + owner_id.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(raw).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
