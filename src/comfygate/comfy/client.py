"""HTTP and WebSocket client for one ComfyUI server (protocol: shared/comfyui-protocol.md).

How answers map onto the error tree:

* no answer (refused, reset, timeout), or a proxy's 502/503/504 → ``BackendUnreachable``
  (retryable); likewise any other unexpected status or non-JSON body on a read, since
  a backend that does not answer like ComfyUI is treated as down, not as a bad job;
* ``POST /prompt`` refused (400 with ``error``/``node_errors``), or accepted only in
  part (200 with non-empty ``node_errors``) → ``PromptRejected`` (permanent);
* ``POST /prompt`` → 500 (or any answer that is not a JSON object): ComfyUI answers
  500 only to bodies that are not a JSON object with a dict ``prompt``, which this
  client never sends, so another attempt would get the same → ``PromptRejected``
  ("the backend refused the request");
* ``/view`` 4xx → ``OutputMissing``; ``/upload/image`` 4xx → ``PromptRejected``;
* the WebSocket cannot connect → ``BackendUnreachable``; drops mid-stream → ``WebSocketLost``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, WebSocketException

from comfygate.comfy.cleaning import clean_node_errors, clean_prompt_error, clean_text
from comfygate.comfy.history import HistoryEntry, OutputRef, parse_history_entry
from comfygate.comfy.messages import Message, parse_message
from comfygate.comfy.multipart import MultipartBody, safe_filename
from comfygate.comfy.session import env_proxy, open_session
from comfygate.errors import BackendUnreachable, OutputMissing, PromptRejected, WebSocketLost

__all__ = [
    "ComfyClient",
    "ComfySocket",
    "HistoryEntry",
    "OutputRef",
    "PromptState",
    "QueueState",
    "SubmitResult",
    "SystemStats",
    "ViewResponse",
]

PromptState = Literal["pending", "running", "done", "unknown"]

#: statuses a reverse proxy in front of ComfyUI gives when ComfyUI itself is down
_PROXY_DOWN = frozenset({502, 503, 504})
#: previews are small, but a 64 MB cap keeps one odd frame from ending the socket
_WS_MAX_FRAME = 64 * 1024 * 1024
_FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
#: what "did not answer" looks like from aiohttp: refused, reset, TLS, timeouts
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class SubmitResult:
    prompt_id: str
    #: the server's queue priority (lowest runs first); not durable across restarts
    number: float


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    #: ComfyUI's internal heap, not necessarily in run order
    pending: tuple[str, ...]


@dataclass(frozen=True)
class SystemStats:
    #: of the first device, the one ComfyUI runs on (RAM on a CPU-only server)
    vram_total: int
    vram_free: int
    ram_total: int
    ram_free: int
    comfyui_version: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ViewResponse:
    """A ``/view`` answer whose body is read in chunks, never held whole."""

    content_type: str
    content_length: int | None
    _response: aiohttp.ClientResponse = field(repr=False)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            # Chunks as they arrive: a fixed chunk size would hold back the first
            # bytes until that many arrived.
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnreachable(f"the backend stopped sending a file: {_name(exc)}") from exc


class ComfySocket:
    """``async for message in socket`` until the server closes the connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    def __aiter__(self) -> ComfySocket:
        return self

    async def __anext__(self) -> Message:
        try:
            raw = await self._ws.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        except (ConnectionClosedError, WebSocketException, OSError) as exc:
            raise WebSocketLost(f"the WebSocket to the backend broke: {_name(exc)}") from exc
        return parse_message(raw)


@dataclass(frozen=True)
class _Answer:
    """A whole (small) answer: status and body."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class ComfyClient:
    """One ComfyUI server. Knows the protocol, nothing of jobs.

    ``http``: a session shared with other clients (see :func:`open_session`), else one
    of its own is opened at the first request. HTTP goes through aiohttp, not httpx:
    ~0.2 ms of CPU per request against httpx's ~1.0 ms, measured on the simulator.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        http: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: sent with every prompt and socket, so the server routes our events to us only
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        #: the trusted CAs of an https backend, for the socket (and a session of its
        #: own); None: the default bundle
        self._tls = tls
        self._own_http = http is None
        self._session = http
        # Each phase, as httpx's timeout did: waiting for a connection, connecting,
        # and every read, never the whole answer (a long /view flows for minutes).
        self._timeouts = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._https = self.base_url.startswith("https://")
        self._proxy, proxy_headers = env_proxy(self.base_url)
        # aiohttp sends proxy headers only on an https tunnel's CONNECT; a plain http
        # request through the proxy carries them itself.
        self._proxy_headers = proxy_headers if self._https else {}
        self._headers = {} if self._https else proxy_headers

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http and self._session is not None:
            await self._session.close()
            self._session = None

    # -- plumbing ------------------------------------------------------------------------

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Only an https backend needs the CA bundle (loading it takes ~50 ms).
            self._session = open_session(tls=self._tls if self._https else True)
        return self._session

    async def _send(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        """The answer with its body still to read; release it after."""
        if self._headers:
            kw["headers"] = {**self._headers, **kw.get("headers", {})}
        return await self._http.request(
            method,
            f"{self.base_url}{path}",
            timeout=self._timeouts,
            # httpx never followed redirects: a backend that redirects is not ComfyUI
            allow_redirects=False,
            proxy=self._proxy,
            proxy_headers=self._proxy_headers or None,
            **kw,
        )

    async def _request(self, method: str, path: str, **kw: Any) -> _Answer:
        if "json" in kw:
            # Encoded as httpx did: compact, UTF-8, and NaN refused before anything is sent.
            body = json.dumps(
                kw.pop("json"), ensure_ascii=False, separators=(",", ":"), allow_nan=False
            )
            kw["data"] = body.encode()
            kw["headers"] = {"Content-Type": "application/json"}
        try:
            response = await self._send(method, path, **kw)
            try:
                answer = _Answer(response.status, await response.read())
            finally:
                response.release()
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnreachable(f"{self.base_url} did not answer: {_name(exc)}") from exc
        if answer.status_code in _PROXY_DOWN:
            raise BackendUnreachable(f"{self.base_url} is down (HTTP {answer.status_code})")
        return answer

    async def _call(self, method: str, path: str, **kw: Any) -> _Answer:
        """A request that must answer 200."""
        response = await self._request(method, path, **kw)
        if response.status_code != 200:
            raise BackendUnreachable(
                f"{self.base_url} answered HTTP {response.status_code} to {method} {path}"
            )
        return response

    async def _get_json(self, path: str) -> Any:
        response = await self._call("GET", path)
        try:
            return response.json()
        except ValueError:
            raise BackendUnreachable(f"{self.base_url} answered {path} with non-JSON") from None

    # -- prompts -------------------------------------------------------------------------

    async def submit(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str,
        extra_data: dict[str, Any] | None = None,
    ) -> SubmitResult:
        """Queue a graph under a caller-chosen id (one fresh canonical UUID per attempt:
        newer servers refuse anything else, and ids are not deduplicated)."""
        if _canonical_uuid(prompt_id) != prompt_id:
            raise ValueError(f"prompt_id must be a canonical lowercase UUID, not {prompt_id!r}")
        body: dict[str, Any] = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
        }
        if extra_data:
            body["extra_data"] = dict(extra_data)
        response = await self._request("POST", "/prompt", json=body)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PromptRejected(f"the backend refused the request (HTTP {response.status_code})")
        errors = clean_node_errors(data.get("node_errors"), prompt)
        if response.status_code != 200:
            raise _rejected(data.get("error"), errors, prompt)
        accepted_id = str(data.get("prompt_id") or prompt_id)
        if errors:
            # Partial acceptance: the valid outputs were queued and would run a part of
            # the graph. Take the prompt back before reporting the refusal. If the backend
            # is gone meanwhile the prompt is gone with it.
            with suppress(BackendUnreachable):
                await self.delete_queued([accepted_id])
            raise _rejected(
                {"message": "the backend accepted only part of the workflow"}, errors, prompt
            )
        return SubmitResult(prompt_id=accepted_id, number=float(data.get("number") or 0))

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt, or None while it is pending, running or unknown."""
        data = await self._get_json(f"/history/{quote(prompt_id, safe='')}")
        raw = data.get(prompt_id) if isinstance(data, dict) else None
        return parse_history_entry(prompt_id, raw) if isinstance(raw, dict) else None

    async def history_ids(self, *, limit: int) -> list[str]:
        """Prompt ids of the newest ``limit`` history entries (empty after a restart)."""
        data = await self._get_json(f"/history?max_items={int(limit)}")
        return [str(k) for k in data] if isinstance(data, dict) else []

    async def queue(self) -> QueueState:
        data = await self._get_json("/queue")
        if not isinstance(data, dict):
            raise BackendUnreachable(f"{self.base_url} answered /queue with {type(data).__name__}")
        return QueueState(
            running=_queue_ids(data.get("queue_running")),
            pending=_queue_ids(data.get("queue_pending")),
        )

    async def prompt_state(self, prompt_id: str) -> PromptState:
        """Where a prompt is. History answers ``{}`` alike for pending, running and unknown
        ids, so the queue tells them apart."""
        if await self.history(prompt_id) is not None:
            return "done"
        queue = await self.queue()
        if prompt_id in queue.running:
            return "running"
        if prompt_id in queue.pending:
            return "pending"
        # It may have finished between the two reads.
        return "done" if await self.history(prompt_id) is not None else "unknown"

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt (only if it is ``prompt_id``, when given). Cooperative:
        takes effect at the next node boundary or progress tick. A pending prompt is not
        touched; use :meth:`delete_queued` for those."""
        await self._call("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    async def free(self) -> None:
        """Unload models and free cached memory, as ComfyUI's "Free" button does."""
        await self._call("POST", "/free", json={"unload_models": True, "free_memory": True})

    async def delete_queued(self, prompt_ids: Sequence[str]) -> None:
        """Remove pending prompts; running ones are ignored by the server."""
        if prompt_ids:
            await self._call("POST", "/queue", json={"delete": list(prompt_ids)})

    # -- files ---------------------------------------------------------------------------

    @asynccontextmanager
    async def view(self, ref: OutputRef) -> AsyncIterator[ViewResponse]:
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        try:
            response = await self._send("GET", "/view", params=params)
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnreachable(f"{self.base_url} did not answer: {_name(exc)}") from exc
        try:
            if response.status in _PROXY_DOWN:
                raise BackendUnreachable(f"{self.base_url} is down (HTTP {response.status})")
            if response.status != 200:
                raise OutputMissing(
                    f"the backend could not serve {ref.filename} (HTTP {response.status})"
                )
            content_type = response.headers.get("content-type", "application/octet-stream")
            length = response.headers.get("content-length")
            yield ViewResponse(
                content_type=content_type.split(";")[0].strip(),
                content_length=int(length) if length and length.isdigit() else None,
                _response=response,
            )
        finally:
            # Closes the connection when the body was not read to its end.
            response.release()

    async def upload_image(
        self,
        data: bytes | AsyncIterable[bytes],
        filename: str,
        *,
        subfolder: str | None = None,
        overwrite: bool = False,
    ) -> str:
        """Put an input file on the server; returns what LoadImage's ``image`` takes.

        The server may rename ("x (1).png" when the name holds other bytes), so the name
        it returns is used, prefixed by its subfolder.
        """
        fields = {"type": "input"}
        if subfolder:
            fields["subfolder"] = subfolder
        if overwrite:
            fields["overwrite"] = "true"
        name = safe_filename(filename)
        body = MultipartBody(fields, "image", name, data)
        content = body.content()
        headers = {"Content-Type": body.content_type}
        if isinstance(content, bytes):
            # Sent in slices so that each is timed, with its length so not chunked.
            headers["Content-Length"] = str(len(content))
            content = _slices(content)
        try:
            async with asyncio.timeout(None) as deadline:
                response = await self._request(
                    "POST",
                    "/upload/image",
                    data=_paced(content, deadline, self.timeout),
                    headers=headers,
                )
        except TimeoutError as exc:
            raise BackendUnreachable(f"{self.base_url} stopped taking the input file") from exc
        if response.status_code != 200:
            raise PromptRejected(
                f"the backend refused the input file {name} (HTTP {response.status_code})"
            )
        try:
            answer = response.json()
            stored, folder = str(answer["name"]), str(answer.get("subfolder") or "")
        except (ValueError, KeyError, TypeError):
            raise BackendUnreachable(f"{self.base_url} answered an upload oddly") from None
        return f"{folder}/{stored}" if folder else stored

    # -- server --------------------------------------------------------------------------

    async def object_info(self) -> dict[str, Any]:
        data = await self._get_json("/object_info")
        if not isinstance(data, dict):
            raise BackendUnreachable(f"{self.base_url} answered /object_info oddly")
        return data

    async def system_stats(self) -> SystemStats:
        raw = await self._get_json("/system_stats")
        if not isinstance(raw, dict):
            raise BackendUnreachable(f"{self.base_url} answered /system_stats oddly")
        system = raw.get("system") or {}
        devices = raw.get("devices") or [{}]
        device = devices[0] if isinstance(devices[0], dict) else {}
        return SystemStats(
            vram_total=int(device.get("vram_total") or 0),
            vram_free=int(device.get("vram_free") or 0),
            ram_total=int(system.get("ram_total") or 0),
            ram_free=int(system.get("ram_free") or 0),
            comfyui_version=str(system.get("comfyui_version") or ""),
            raw=raw,
        )

    # -- events --------------------------------------------------------------------------

    @asynccontextmanager
    async def socket(self) -> AsyncIterator[ComfySocket]:
        """The event stream for this client id, with typed binary previews negotiated."""
        url = self.base_url
        if url.startswith("https://"):
            url = "wss://" + url.removeprefix("https://")
        elif url.startswith("http://"):
            url = "ws://" + url.removeprefix("http://")
        url = f"{url}/ws?clientId={quote(self.client_id, safe='')}"
        try:
            ws = await connect(
                url,
                max_size=_WS_MAX_FRAME,
                open_timeout=self.timeout,
                ssl=self._tls if self._https else None,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise BackendUnreachable(
                f"{self.base_url} refused the WebSocket: {_name(exc)}"
            ) from exc
        try:
            try:
                await ws.send(_FEATURE_FLAGS)
            except (WebSocketException, OSError) as exc:
                raise WebSocketLost(f"the WebSocket to the backend broke: {_name(exc)}") from exc
            yield ComfySocket(ws)
        finally:
            await ws.close()


def _rejected(error: Any, errors: list[dict[str, Any]], prompt: dict[str, Any]) -> PromptRejected:
    """A PromptRejected whose message names the first failing node and whose details
    list every node error (or the top-level error when no node is named)."""
    top = clean_prompt_error(error, prompt)
    if not errors:
        errors = [top] if top["message"] else []
        message = top["message"] or "the backend refused the workflow"
        if top["details"]:
            message += f" ({top['details']})"
    else:
        first = errors[0]
        message = f"{top['message'] or 'the backend refused the workflow'}: node {first['node_id']}"
        if first["class_type"]:
            message += f" ({first['class_type']})"
        message += f": {first['message']}"
        if first["details"]:
            message += f" ({first['details']})"
        if len(errors) > 1:
            message += f"; and {len(errors) - 1} more"
    node_id = errors[0]["node_id"] if errors else None
    class_type = errors[0]["class_type"] if errors else None
    return PromptRejected(
        clean_text(message), node_id=node_id, class_type=class_type, details=errors
    )


async def _slices(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _paced(
    chunks: AsyncIterable[bytes], deadline: asyncio.Timeout, per_chunk_s: float
) -> AsyncIterator[bytes]:
    """httpx's write timeout, which aiohttp lacks: each chunk must go into the socket
    within ``per_chunk_s`` (else a backend that stops reading holds the upload until TCP
    gives up); reading the next chunk from its source is not timed."""
    loop = asyncio.get_running_loop()
    async for chunk in chunks:
        deadline.reschedule(loop.time() + per_chunk_s)
        yield chunk
        deadline.reschedule(None)


def _queue_ids(items: Any) -> tuple[str, ...]:
    """Prompt ids of ``[number, prompt_id, prompt, extra_data, outputs]`` queue items."""
    if not isinstance(items, list):
        return ()
    return tuple(str(item[1]) for item in items if isinstance(item, list) and len(item) > 1)


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _name(exc: BaseException) -> str:
    """An exception as text without anything the server sent (it may hold paths)."""
    text = clean_text(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
