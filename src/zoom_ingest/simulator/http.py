"""HTTP plumbing: a keep-alive server on 127.0.0.1 that turns requests into `Reply`s.

Zoom's answers are built as `Reply` values (status, body, headers); `ApiError` carries
an error answer out of deep code; `RESET` closes the connection without one. The
server is a ThreadingHTTPServer speaking HTTP/1.1 keep-alive, so a pooled
``requests.Session`` reuses its connections. It logs nothing but its own bugs, and
knows nothing of Zoom: it hands every request to one `Handle` callable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


#: Close the connection without an answer.
RESET = Reply(0, b"")

#: Answers one request: (method, target, Authorization header, body) -> Reply.
Handle = Callable[[str, str, "str | None", bytes], Reply]


def json_reply(status: int, payload: object, *headers: tuple[str, str]) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, [("Content-Type", JSON_TYPE), *headers])


class ApiError(Exception):
    """A Zoom error answer: HTTP status, Zoom code and message."""

    def __init__(self, status: int, code: int, message: str, *headers: tuple[str, str]) -> None:
        super().__init__(message)
        self.reply = json_reply(status, {"code": code, "message": message}, *headers)


def with_headers(reply: Reply, headers: list[tuple[str, str]]) -> Reply:
    return Reply(reply.status, reply.body, [*reply.headers, *headers])


def truncated(reply: Reply) -> Reply:
    """The reply with its body cut in half, as a dropped connection leaves it."""
    return Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers)


def tracking_id() -> str:
    return f"v=2.0;clid=us06;rid=WEB_{secrets.token_hex(16)}"


def single_values(query: str) -> dict[str, str]:
    """A query string or form body as a dict, the first value of each name."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


class LoopbackServer:
    """Serves `handle` on 127.0.0.1:`port` (0: a free one) from a daemon thread."""

    def __init__(self, port: int, handle: Handle) -> None:
        self._server = _Server(("127.0.0.1", port), handle)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"zoom-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for connection in self._server.open_connections():
            # keep-alive clients must not reach a stopped server
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many windows connect at once in benchmarks

    def __init__(self, address: tuple[str, int], handle: Handle) -> None:
        self.answer = handle
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def open_connections(self) -> list[socket.socket]:
        with self._connections_lock:
            return list(self._connections)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (and tests stopping the server) are not errors worth a trace.
        if not isinstance(sys.exc_info()[1], OSError):
            log.exception("zoom simulator: error while handling a request")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZoomSimulator/1.0"
    timeout = 120  # idle keep-alive connections are closed eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # One small write for headers, one for the body: without NODELAY, Nagle and
        # delayed ACKs would add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def do_PATCH(self) -> None:
        self._answer("PATCH")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.server.answer(method, self.path, self.headers.get("Authorization"), body)
        except Exception:
            log.exception("zoom simulator: error while answering %s %s", method, self.path)
            reply = json_reply(500, {"code": 500, "message": "Simulator error."})
        if reply is RESET:
            # Linger 0: closing sends a TCP RST, as a crashing proxy does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks make thousands of calls
