"""A TCP proxy on loopback that can cut every open connection: a dropped network, as
the browser sees it, while the gateway behind keeps running."""

from __future__ import annotations

import contextlib
import socket
import threading

from comfygate.serve import free_port


class CuttableProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open: set[socket.socket] = set()
        #: the request head of every request the browser sent, as it went on the wire
        self.heads: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open.update((client, upstream))
            for src, dst, sniff in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, sniff), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, sniff: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                if sniff and chunk[:8].split(b" ")[0] in (b"GET", b"POST", b"PUT"):
                    self.heads.append(chunk.split(b"\r\n\r\n")[0].decode("latin-1"))
                dst.sendall(chunk)
        self._close(src, dst)

    def stream_requests(self) -> list[dict[str, str]]:
        """The headers of each ``GET /v1/events`` so far, names lowercased."""
        found = []
        for head in self.heads:
            line, *fields = head.split("\r\n")
            if line.startswith("GET /v1/events"):
                pairs = (f.split(":", 1) for f in fields if ":" in f)
                found.append({k.strip().lower(): v.strip() for k, v in pairs})
        return found

    def _close(self, *socks: socket.socket) -> None:
        for s in socks:
            with self._lock:
                self._open.discard(s)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        """Drops every connection open now; new ones go through as before."""
        with self._lock:
            live = list(self._open)
        self._close(*live)

    def close(self) -> None:
        self._listener.close()
        self.cut()
