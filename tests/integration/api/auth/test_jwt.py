"""Users of an identity provider: JWTs checked against a loopback JWKS server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from tests.integration.conftest import GatewayFactory, RunningGateway

ISSUER = "https://id.example/"
AUDIENCE = "comfygate-site"
KID = "k1"
#: every JWKS request the provider answered
FETCHES: list[str] = []


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key: RSAPrivateKey) -> Iterator[str]:
    """The provider's published keys, as Supabase, Auth0 or Keycloak serve them."""
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            FETCHES.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def site(start_gateway: GatewayFactory, jwks_url: str) -> RunningGateway:
    jwt_settings = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url}
    return await start_gateway(allow_anonymous=False, jwt=jwt_settings)


def token(key: RSAPrivateKey, *, kid: str = KID, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": kid})


async def test_a_valid_token_is_that_user_who_owns_their_jobs(
    site: RunningGateway, signing_key: RSAPrivateKey
) -> None:
    alice = {"authorization": f"Bearer {token(signing_key)}"}
    bob = {"authorization": f"Bearer {token(signing_key, sub='bob')}"}
    async with site.client(headers=alice) as a, site.client(headers=bob) as b:
        made = await a.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert made.status_code == 202, made.text
        job = await site.gw.store.get_job(made.json()["id"])
        assert job is not None and job.owner_id == "user:alice"
        assert (await a.get(f"/v1/jobs/{job.id}")).json()["id"] == job.id
        assert (await b.get(f"/v1/jobs/{job.id}")).status_code == 404
        assert (await b.get("/v1/jobs")).json()["jobs"] == []
        assert (await a.get("/v1/admin/stats")).status_code == 403


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("expired", "expired"),
        ("wrong audience", "audience"),
        ("wrong issuer", "issuer"),
        ("bad signature", "signature"),
        ("unknown kid", "kid"),
        ("no sub", "sub"),
    ],
)
async def test_a_token_that_fails_a_check_is_a_401(
    site: RunningGateway, signing_key: RSAPrivateKey, case: str, why: str
) -> None:
    now = int(time.time())
    bad = {
        "expired": lambda: token(signing_key, iat=now - 900, exp=now - 600),
        "wrong audience": lambda: token(signing_key, aud="another-site"),
        "wrong issuer": lambda: token(signing_key, iss="https://evil.example/"),
        "bad signature": lambda: token(new_key()),
        "unknown kid": lambda: token(signing_key, kid="k9"),
        "no sub": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300},
            signing_key,
            algorithm="RS256",
            headers={"kid": KID},
        ),
    }[case]()
    async with site.client(headers={"authorization": f"Bearer {bad}"}) as c:
        r = await c.get("/v1/jobs")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_credentials"
    assert why in r.json()["error"]["message"].lower()


async def test_unknown_kids_refetch_the_keys_at_most_once_a_minute(
    site: RunningGateway, signing_key: RSAPrivateKey
) -> None:
    async with site.client() as c:
        ok = {"authorization": f"Bearer {token(signing_key)}"}
        assert (await c.get("/v1/jobs", headers=ok)).status_code == 200
        before = len(FETCHES)
        for i in range(5):
            forged = {"authorization": f"Bearer {token(signing_key, kid=f'forged-{i}')}"}
            assert (await c.get("/v1/jobs", headers=forged)).status_code == 401
        assert len(FETCHES) - before <= 1
