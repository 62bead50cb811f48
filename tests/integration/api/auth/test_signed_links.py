"""Signed file URLs: any change to the key, expiry or signature, or an expired link,
opens nothing — whoever asks, the admin included."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from tests.integration.conftest import RunningGateway

KEY = "outputs/0194a1b2-0000-7000-8000-000000000001/main/1/9-0.png"


def _parts(url: str) -> tuple[str, int, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path, int(query["exp"][0]), query["sig"][0]


def _url(path: str, exp: int, sig: str) -> str:
    return f"{path}?{urlencode({'exp': exp, 'sig': sig})}"


async def test_a_tampered_or_expired_file_url_is_refused(locked: RunningGateway) -> None:
    await locked.gw.storage.put_bytes(KEY, b"png", "image/png")
    good, _ = await locked.gw.storage.signed_url(KEY, 600)
    path, exp, sig = _parts(good)
    other = path.replace("9-0.png", "9-1.png")
    await locked.gw.storage.put_bytes(KEY.replace("9-0", "9-1"), b"png", "image/png")
    expired, _ = await locked.gw.storage.signed_url(KEY, -5)
    admin = {"authorization": f"Bearer {locked.settings.admin_key()}"}
    async with locked.client() as anyone, locked.client(headers=admin) as operator:
        assert (await anyone.get(good)).content == b"png"
        for bad in (
            _url(path, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B")),
            _url(path, exp + 3600, sig),
            _url(other, exp, sig),
            expired,
            path,
        ):
            for client in (anyone, operator):
                r = await client.get(bad)
                assert r.status_code in (403, 422), (bad, r.status_code)
                assert b"png" not in r.content
