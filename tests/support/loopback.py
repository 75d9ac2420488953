"""An HTTP(S) server on 127.0.0.1 that a test starts and always stops: its base URL."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread (over TLS with `tls`); yield
    `http(s)://127.0.0.1:<port>`. The server is shut down and closed when the `with` ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def trickle(handler: BaseHTTPRequestHandler, data: bytes, limit: int) -> None:
    """Write the first `limit` bytes of `data` one a second, each within any per-read
    timeout, until the client hangs up: what a whole-request deadline must cut off."""
    handler.close_connection = True
    for byte in data[:limit]:
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(1.0)
