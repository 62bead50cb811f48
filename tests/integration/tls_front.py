"""A TLS front for a plain loopback server, as a reverse proxy that ends https in front
of ComfyUI: bytes pass through both ways, so WebSockets do too. Its certificate, from a
test CA, names 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import trustme


class TlsFront:
    def __init__(self, target_url: str) -> None:
        self._target_port = int(target_url.rsplit(":", 1)[1])
        self.ca = trustme.CA()
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts the test CA (and nothing else)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def ca_file(self, folder: Path) -> Path:
        path = folder / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path

    async def start(self) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", 0, ssl=context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            back_r, back_w = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, back_w}
        try:
            await asyncio.gather(_copy(client_r, back_w), _copy(back_r, client_w))
        finally:
            self._writers -= {client_w, back_w}


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    # One side ended: end both (TLS has no half-close).
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


class ConnectProxy:
    """A forward proxy that only tunnels (``CONNECT``), as https goes through one; it
    records each request head it was sent."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _tunnel(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        head = await client_r.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        host, port = head.split(b" ")[1].decode().rsplit(":", 1)
        back_r, back_w = await asyncio.open_connection(host, int(port))
        client_w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_copy(client_r, back_w), _copy(back_r, client_w))
