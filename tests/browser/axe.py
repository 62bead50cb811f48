"""axe-core from the npm registry: a pinned version, checked against its published
integrity, cached next to the virtualenv so later runs need no network."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import httpx

VERSION = "4.14.1"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
#: ``dist.integrity`` of this version in the registry's metadata
INTEGRITY = (
    "sha512-"
    "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
)
MEMBER = "package/axe.min.js"


def check_integrity(data: bytes, integrity: str = INTEGRITY) -> None:
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise OSError(f"axe-core {VERSION}: the tarball does not match its integrity {integrity}")


def axe_source(cache_dir: Path) -> str:
    cached = cache_dir / f"axe-core-{VERSION}.tgz"
    if cached.exists():
        data = cached.read_bytes()
    else:
        try:
            response = httpx.get(TARBALL, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from exc
        data = response.content
    # Checked on every read: a damaged or swapped cache file is refused, not trusted.
    check_integrity(data)
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(cached)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise OSError(f"axe-core {VERSION}: {MEMBER} is not in the tarball")
        return member.read().decode()
