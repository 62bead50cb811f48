"""The worker protocol over HTTP: a remote agent needs only outbound access to the
gateway. While the gateway is away, calls are retried with capped backoff, so an agent
is back within one lease TTL of the gateway's return."""

from __future__ import annotations

import hashlib
import logging
import random
import tempfile
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any

import httpx

from comfygate.clock import SYSTEM_CLOCK, Clock
from comfygate.errors import ComfygateError, LeaseLost, ModelsUnknown
from comfygate.jobs.model import HeartbeatReply, JobFailure, Lease, Lessee, OutputFile, Progress
from comfygate.worker.blobs import WorkerBlobs
from comfygate.worker.transport.base import WorkerTransport
from comfygate.worker.transport.presigned import upload_spooled
from comfygate.worker.transport.wire import (
    LEASE_HEADER,
    PREFIX,
    PRESIGNED,
    file_url,
    lease_from_dict,
    lessee_to_dict,
    models_digest,
    output_path,
)

log = logging.getLogger(__name__)

#: answers that mean "the gateway is away or restarting", not "no"
AWAY = frozenset({502, 503, 504})
MAX_BACKOFF_S = 10.0
#: the longest the gateway holds a lease call open
MAX_WAIT_S = 25.0
#: a fenced terminal call keeps trying this long: past two lease TTLs the job has been
#: rescued anyway and the answer would be lease_lost
FINISH_RETRY_S = 60.0
#: an output bound for a presigned URL is measured first (S3 wants its length up front):
#: this much in memory, the rest in a temporary file
SPOOL_BYTES = 8 * 1024 * 1024


class GatewayRefused(ComfygateError):
    """The gateway answered a worker call with an error."""

    code = "gateway_refused"


class _Away(Exception):
    """The gateway did not answer (connection failed, or 502/503/504)."""


class Backoff:
    """Capped exponential backoff with full jitter, reset on success."""

    def __init__(self, clock: Clock, *, first_s: float = 0.5, cap_s: float = MAX_BACKOFF_S):
        self._clock = clock
        self._first = first_s
        self._cap = cap_s
        self._next = first_s

    async def wait(self) -> None:
        await self._clock.sleep(random.uniform(self._next / 2, self._next))
        self._next = min(self._next * 2, self._cap)


class HttpTransport(WorkerTransport):
    def __init__(
        self,
        gateway: str,
        token: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=gateway.rstrip("/"),
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
            transport=transport,
        )
        #: the digest of the model list the gateway answered a lease call with last
        self._models_known: str | None = None
        #: to presigned storage URLs: no worker token goes there
        self.storage_http = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))
        #: jobs whose leases said their outputs go to presigned URLs
        self.presigned: set[str] = set()
        self.blobs = HttpBlobs(self)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.storage_http.aclose()

    def _leased(self, data: dict[str, Any]) -> Lease:
        lease = lease_from_dict(data)
        if data.get("outputs_upload") == PRESIGNED:
            self.presigned.add(lease.job_id)
        return lease

    async def send(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float = 30.0,
        **kw: Any,
    ) -> httpx.Response:
        """One call; LeaseLost on 409 lease_lost, GatewayRefused on other errors, _Away
        when the gateway did not answer."""
        try:
            response = await self._http.request(method, path, timeout=timeout_s, **kw)
        except httpx.TransportError as exc:
            raise _Away(str(exc) or type(exc).__name__) from exc
        if response.status_code in AWAY:
            raise _Away(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            error = _error_of(response)
            if response.status_code == 409 and error.get("code") == "lease_lost":
                raise LeaseLost
            raise GatewayRefused(
                f"{method} {path}: {response.status_code} {error.get('message', '')}".strip(),
                details=error,
            )
        return response

    async def _persist(
        self, method: str, path: str, *, for_s: float | None, **kw: Any
    ) -> httpx.Response:
        """``send``, retried while the gateway is away (for ``for_s``; None: forever)."""
        backoff = Backoff(self._clock)
        give_up = None if for_s is None else self._clock.monotonic() + for_s
        while True:
            try:
                return await self.send(method, path, **kw)
            except _Away as exc:
                if give_up is not None and self._clock.monotonic() >= give_up:
                    raise GatewayRefused(f"the gateway is away: {exc}") from exc
                log.warning("gateway away on %s %s (%s); retrying", method, path, exc)
                await backoff.wait()

    async def lease(
        self, lessee: Lessee, *, wait_s: float, wanted: Callable[[], bool] = lambda: True
    ) -> Lease | None:
        # One request id for every retry of this call: a lease the gateway took for a
        # call whose answer never arrived comes back, instead of waiting for a rescue.
        body = {"request_id": uuid.uuid4().hex, "wait_s": min(wait_s, MAX_WAIT_S)}
        # The model list goes by its digest once the gateway has taken it: a backend
        # with thousands of model files would send them with every call otherwise.
        digest = models_digest(lessee.models) if lessee.models is not None else None
        with_models = digest is None or digest != self._models_known
        backoff = Backoff(self._clock)
        while wanted():
            body.update(lessee_to_dict(lessee, with_models=with_models))
            try:
                response = await self.send(
                    "POST", f"{PREFIX}/lease", json=body, timeout_s=MAX_WAIT_S + 15.0
                )
            except _Away as exc:
                log.warning("gateway away while leasing (%s); retrying", exc)
                # Another gateway may answer the retry: it looks for the lease this
                # call's first try may still take.
                body["retry"] = True
                await backoff.wait()
                continue
            except GatewayRefused as exc:
                said = exc.details.get("code") if isinstance(exc.details, dict) else None
                if said != ModelsUnknown.code or with_models:
                    raise
                with_models = True  # another gateway, or this one restarted
                continue
            self._models_known = digest
            if response.status_code == 204:
                return None
            return self._leased(response.json())
        return None

    async def adopt(self, *, agent_id: str, backend: str) -> list[Lease]:
        response = await self._persist(
            "POST", f"{PREFIX}/adopt", for_s=None, json={"agent_id": agent_id, "backend": backend}
        )
        return [self._leased(x) for x in response.json()["leases"]]

    async def heartbeat(self, lease: Lease) -> HeartbeatReply:
        # Not retried here: the agent counts failing heartbeats and stops leasing.
        response = await self.send(
            "POST", _job(lease, "heartbeat"), json={"lease_token": lease.lease_token}
        )
        return HeartbeatReply(cancel=bool(response.json()["cancel"]))

    async def wait_cancel(self, lease: Lease, timeout_s: float) -> bool:
        # No push channel: the heartbeat's and progress' replies carry the cancel.
        await self._clock.sleep(timeout_s)
        return False

    async def progress(self, lease: Lease, progress: Progress) -> HeartbeatReply:
        body = {"lease_token": lease.lease_token, "progress": progress.to_dict()}
        try:
            response = await self.send("POST", _job(lease, "progress"), json=body)
        except (_Away, GatewayRefused) as exc:
            # Best effort: a missed tick is not worth failing the job for.
            log.debug("progress of job %s not delivered: %s", lease.job_id, exc)
            return HeartbeatReply(cancel=False)
        return HeartbeatReply(cancel=bool(response.json()["cancel"]))

    async def preview(
        self, lease: Lease, *, node_id: str | None, content_type: str, data: bytes
    ) -> None:
        try:
            await self.send(
                "POST",
                _job(lease, "preview"),
                params={} if node_id is None else {"node_id": node_id},
                headers={LEASE_HEADER: lease.lease_token, "content-type": content_type},
                content=data,
            )
        except (_Away, GatewayRefused) as exc:
            log.debug("preview of job %s not delivered: %s", lease.job_id, exc)

    async def complete(
        self, lease: Lease, outputs: Sequence[OutputFile], progress: Progress | None = None
    ) -> None:
        self.presigned.discard(lease.job_id)
        body = {
            "lease_token": lease.lease_token,
            "outputs": [o.to_dict() for o in outputs],
            "progress": None if progress is None else progress.to_dict(),
        }
        await self._persist("POST", _job(lease, "complete"), for_s=FINISH_RETRY_S, json=body)

    async def fail(self, lease: Lease, failure: JobFailure, *, retryable: bool) -> None:
        self.presigned.discard(lease.job_id)
        body = {
            "lease_token": lease.lease_token,
            "failure": failure.to_dict(),
            "retryable": retryable,
        }
        await self._persist("POST", _job(lease, "fail"), for_s=FINISH_RETRY_S, json=body)

    async def canceled(self, lease: Lease) -> None:
        self.presigned.discard(lease.job_id)
        await self._persist(
            "POST",
            _job(lease, "canceled"),
            for_s=FINISH_RETRY_S,
            json={"lease_token": lease.lease_token},
        )


class HttpBlobs(WorkerBlobs):
    """Files through the gateway, fenced by the lease token like every other call."""

    def __init__(self, transport: HttpTransport) -> None:
        self._t = transport

    async def read(self, lease: Lease, key: str) -> bytes:
        response = await self._t._persist(
            "GET",
            file_url(lease, key),
            for_s=FINISH_RETRY_S,
            headers={LEASE_HEADER: lease.lease_token},
        )
        return response.content

    async def write(
        self, lease: Lease, name: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[str, int, str]:
        if lease.job_id in self._t.presigned:
            return await self._write_presigned(lease, name, chunks, content_type)
        # Streamed, so not retried: the agent reports a storage failure instead.
        try:
            response = await self._t.send(
                "PUT",
                output_path(lease.job_id, name),
                headers={LEASE_HEADER: lease.lease_token, "content-type": content_type},
                content=chunks,
                timeout_s=300.0,
            )
        except (_Away, GatewayRefused) as exc:
            raise OSError(f"uploading {name} failed: {exc}") from exc
        stored = response.json()
        return str(stored["key"]), int(stored["bytes"]), str(stored["sha256"])

    async def _write_presigned(
        self, lease: Lease, name: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[str, int, str]:
        """Measure the output, then send it straight to storage by URLs the gateway
        signs for its length; ``complete`` has the gateway check what arrived."""
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)

            async def ask(call: str, body: dict[str, Any]) -> dict[str, Any]:
                try:
                    response = await self._t.send(
                        "POST",
                        f"{output_path(lease.job_id, name)}/{call}",
                        headers={LEASE_HEADER: lease.lease_token},
                        json=body,
                    )
                except (_Away, GatewayRefused) as exc:
                    raise OSError(f"{call} failed: {exc}") from exc
                answer: dict[str, Any] = response.json() if response.content else {}
                return answer

            try:
                key = await upload_spooled(self._t.storage_http, ask, spool, size, content_type)
            except OSError as exc:
                raise OSError(f"uploading {name}: {exc}") from exc
        return key, size, digest.hexdigest()


def _job(lease: Lease, call: str) -> str:
    return f"{PREFIX}/jobs/{lease.job_id}/{call}"


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except ValueError:
        return {}
    return error if isinstance(error, dict) else {}
