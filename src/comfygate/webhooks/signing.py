"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each owner has one secret, derived from the gateway's signing key, so nothing is stored
and every gateway of a deployment signs alike; the owner reads it at
``GET /v1/webhooks/secret``. Changing ``secret_key`` changes every owner's secret.
The signature itself is the reference library's, so a receiver's verifier and our
signer cannot drift apart."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
#: keeps this derivation apart from every other use of the signing key
CONTEXT = b"comfygate/webhook-secret/v1\x00"


def owner_secret(signing_key: bytes, owner_id: str) -> str:
    raw = hmac.new(signing_key, CONTEXT + owner_id.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(raw).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    # The library takes a datetime and signs its whole seconds: an int converts exactly.
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }
