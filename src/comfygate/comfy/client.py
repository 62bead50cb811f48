"""HTTP and WebSocket client for one ComfyUI server (protocol: shared/comfyui-protocol.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import websockets

from comfygate.comfy.cleaning import clean_node_errors, clean_text
from comfygate.comfy.messages import Message, parse_message
from comfygate.errors import BackendUnreachable, OutputMissing, PromptRejected, WebSocketLost

#: history keys holding file lists, in ComfyUI's node outputs
FILE_KEYS = ("images", "gifs", "video", "videos", "audio", "files")


@dataclass(frozen=True)
class SubmitResult:
    prompt_id: str
    number: float


@dataclass(frozen=True)
class OutputRef:
    filename: str
    subfolder: str
    type: str
    kind: str


@dataclass(frozen=True)
class ExecutionErrorInfo:
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str


@dataclass(frozen=True)
class HistoryEntry:
    prompt_id: str
    status_str: str
    completed: bool
    outputs: dict[str, list[OutputRef]]
    texts: dict[str, list[str]] = field(default_factory=dict)
    error: ExecutionErrorInfo | None = None
    interrupted: bool = False
    prompt: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, prompt_id: str, raw: dict[str, Any]) -> HistoryEntry:
        outputs: dict[str, list[OutputRef]] = {}
        texts: dict[str, list[str]] = {}
        for node_id, out in (raw.get("outputs") or {}).items():
            refs = []
            for key in FILE_KEYS:
                for item in out.get(key) or []:
                    if isinstance(item, dict) and "filename" in item:
                        refs.append(
                            OutputRef(
                                filename=item["filename"],
                                subfolder=item.get("subfolder", ""),
                                type=item.get("type", "output"),
                                kind=key,
                            )
                        )
            if refs:
                outputs[str(node_id)] = refs
            text = out.get("text")
            if text:
                texts[str(node_id)] = [str(t) for t in (text if isinstance(text, list) else [text])]
        status = raw.get("status") or {}
        error = None
        interrupted = False
        for name, data in status.get("messages") or []:
            if name == "execution_error":
                error = ExecutionErrorInfo(
                    node_id=None if data.get("node_id") is None else str(data["node_id"]),
                    node_type=data.get("node_type"),
                    exception_type=str(data.get("exception_type", "")),
                    exception_message=clean_text(str(data.get("exception_message", ""))),
                )
            elif name == "execution_interrupted":
                interrupted = True
        prompt = raw.get("prompt") or []
        return cls(
            prompt_id=prompt_id,
            status_str=str(status.get("status_str", "")),
            completed=bool(status.get("completed", False)),
            outputs=outputs,
            texts=texts,
            error=error,
            interrupted=interrupted,
            prompt=prompt[2] if len(prompt) > 2 and isinstance(prompt[2], dict) else {},
        )


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True)
class SystemStats:
    ram_total: int
    ram_free: int
    vram_total: int
    vram_free: int
    comfyui_version: str
    raw: dict[str, Any]


@dataclass
class ViewResponse:
    content_type: str
    response: httpx.Response

    def iter_bytes(self) -> AsyncIterator[bytes]:
        return self.response.aiter_bytes(256 * 1024)


PromptState = Literal["pending", "running", "done", "unknown"]


class ComfySocket:
    def __init__(self, ws: Any) -> None:
        self._ws = ws

    def __aiter__(self) -> ComfySocket:
        return self

    async def __anext__(self) -> Message:
        try:
            raw = await self._ws.recv()
        except websockets.ConnectionClosedOK:
            raise StopAsyncIteration from None
        except (websockets.ConnectionClosed, OSError) as exc:
            raise WebSocketLost(str(exc)) from exc
        return parse_message(raw)


class ComfyClient:
    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(method, f"{self.base_url}{path}", **kw)
        except httpx.TransportError as exc:
            raise BackendUnreachable(
                f"{self.base_url} did not answer: {type(exc).__name__}"
            ) from exc

    async def submit(
        self, prompt: dict[str, Any], *, prompt_id: str, extra_data: dict[str, Any] | None = None
    ) -> SubmitResult:
        body: dict[str, Any] = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
        }
        if extra_data:
            body["extra_data"] = extra_data
        response = await self._request("POST", "/prompt", json=body)
        if response.status_code >= 500:
            raise PromptRejected(f"the backend refused the request (HTTP {response.status_code})")
        try:
            data = response.json()
        except ValueError:
            raise PromptRejected(f"the backend answered HTTP {response.status_code}") from None
        errors = clean_node_errors(data.get("node_errors") or {})
        if response.status_code != 200:
            error = data.get("error") or {}
            message = clean_text(str(error.get("message") or "the backend refused the workflow"))
            if errors:
                first = errors[0]
                where = f"{first['class_type']} (node {first['node_id']})"
                message = f"{message}: {where}: {first['message']}"
                if first["details"]:
                    message += f" ({first['details']})"
            elif error.get("details"):
                message = f"{message} ({clean_text(str(error['details']))})"
            raise PromptRejected(
                message,
                node_id=errors[0]["node_id"] if errors else None,
                class_type=errors[0]["class_type"] if errors else None,
                details={"type": error.get("type"), "node_errors": errors},
            )
        if errors:
            # Partial acceptance: only some outputs were queued. Take it back.
            await self.delete_queued([data.get("prompt_id", prompt_id)])
            first = errors[0]
            raise PromptRejected(
                f"the backend refused part of the workflow: {first['class_type']} "
                f"(node {first['node_id']}): {first['message']}",
                node_id=first["node_id"],
                class_type=first["class_type"],
                details={"type": "partial", "node_errors": errors},
            )
        return SubmitResult(prompt_id=data["prompt_id"], number=data.get("number", 0))

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        response = await self._request("GET", f"/history/{prompt_id}")
        data = response.json() if response.status_code == 200 else {}
        raw = data.get(prompt_id)
        return HistoryEntry.parse(prompt_id, raw) if raw else None

    async def queue(self) -> QueueState:
        data = (await self._request("GET", "/queue")).json()
        return QueueState(
            running=tuple(str(item[1]) for item in data.get("queue_running") or []),
            pending=tuple(str(item[1]) for item in data.get("queue_pending") or []),
        )

    async def prompt_state(self, prompt_id: str) -> PromptState:
        """History ``{}`` means pending, running or unknown; the queue tells which."""
        if await self.history(prompt_id) is not None:
            return "done"
        queue = await self.queue()
        if prompt_id in queue.running:
            return "running"
        if prompt_id in queue.pending:
            return "pending"
        # It may have finished between the two reads.
        return "done" if await self.history(prompt_id) is not None else "unknown"

    @asynccontextmanager
    async def view(self, ref: OutputRef) -> AsyncIterator[ViewResponse]:
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        request = self._http.build_request("GET", f"{self.base_url}/view", params=params)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise BackendUnreachable(f"{self.base_url} did not answer") from exc
        try:
            if response.status_code != 200:
                raise OutputMissing(
                    f"the backend could not serve {ref.filename} ({response.status_code})"
                )
            content_type = response.headers.get("content-type", "application/octet-stream")
            yield ViewResponse(content_type.split(";")[0].strip(), response)
        finally:
            await response.aclose()

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str | None = None, overwrite: bool = False
    ) -> str:
        form: dict[str, str] = {"type": "input"}
        if subfolder:
            form["subfolder"] = subfolder
        if overwrite:
            form["overwrite"] = "true"
        response = await self._request(
            "POST", "/upload/image", data=form, files={"image": (filename, data)}
        )
        if response.status_code != 200:
            raise PromptRejected(
                f"the backend refused the input image (HTTP {response.status_code})"
            )
        body = response.json()
        # The server may rename ("x (1).png"): always use the name it returns.
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else str(body["name"])

    async def interrupt(self, prompt_id: str | None = None) -> None:
        body = {"prompt_id": prompt_id} if prompt_id else {}
        await self._request("POST", "/interrupt", json=body)

    async def delete_queued(self, prompt_ids: Sequence[str]) -> None:
        await self._request("POST", "/queue", json={"delete": list(prompt_ids)})

    async def object_info(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._request("GET", "/object_info")).json()
        return data

    async def system_stats(self) -> SystemStats:
        raw: dict[str, Any] = (await self._request("GET", "/system_stats")).json()
        system = raw.get("system") or {}
        device = (raw.get("devices") or [{}])[0]
        return SystemStats(
            ram_total=int(system.get("ram_total", 0)),
            ram_free=int(system.get("ram_free", 0)),
            vram_total=int(device.get("vram_total", 0)),
            vram_free=int(device.get("vram_free", 0)),
            comfyui_version=str(system.get("comfyui_version", "")),
            raw=raw,
        )

    @asynccontextmanager
    async def socket(self) -> AsyncIterator[ComfySocket]:
        ws_url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        try:
            async with websockets.connect(
                f"{ws_url}/ws?clientId={self.client_id}",
                max_size=64 * 1024 * 1024,
                open_timeout=10,
            ) as ws:
                await ws.send(
                    '{"type": "feature_flags", "data": {"supports_preview_metadata": true}}'
                )
                yield ComfySocket(ws)
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            raise WebSocketLost(f"WebSocket to {self.base_url} failed: {exc}") from exc
