"""`EnvironmentAdapter.get` sends what `session.get` sends and returns what it returns:
the same request line, headers and cookies, the same response, the same exceptions."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
import requests

from support import loopback
from zoom_ingest.zoom.transport import (
    DeadlineExceeded,
    EnvironmentAdapter,
    ResponseTooLarge,
    TransportLimits,
)


class _Recorder(BaseHTTPRequestHandler):
    """Records each request line and its headers; the first answer sets a cookie."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append((self.path, dict(self.headers.items())))
        body = json.dumps({"path": self.path}).encode()
        if self.path.startswith(("/gzip", "/cut")):
            self._special(body)
            return
        self.send_response(302 if self.path.startswith("/moved") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/moved"):
            self.send_header("Location", "/elsewhere")
        if len(_Recorder.seen) == 1:
            self.send_header("Set-Cookie", "lb=node-7; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def _special(self, body: bytes) -> None:
        """/gzip: the body gzip-compressed; /cut: the connection closes mid-body."""
        if self.path.startswith("/gzip"):
            body = gzip.compress(body * 500)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) + (100 if "cut" in self.path else 0)))
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        # Said, not only done: a client may reuse a kept-alive connection that the
        # server closed without a word, and its next request then meets a closed socket.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = []
    with loopback.serve(_Recorder) as url:
        yield url


def _session(base: str) -> tuple[requests.Session, EnvironmentAdapter]:
    """A session set up as ZoomClient sets up its own."""
    session = requests.Session()
    session.trust_env = False
    adapter = EnvironmentAdapter((base,), pool_connections=2, pool_maxsize=2)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "zoom-ingest/test"
    return session, adapter


PARAMS: list[dict[str, Any]] = [
    {"from": "2025-08-01", "to": "2025-08-01", "page_size": 300},
    {"page_size": 300, "next_page_token": "aB+c/d=e~f g&h%i é", "category_type": "all"},
    {"from": "2025-08-01", "skipped": None, "n": 0},
    {},
]


@pytest.mark.parametrize("params", PARAMS)
def test_the_same_request_and_response_as_session_get(server: str, params: dict[str, Any]) -> None:
    headers = {"Authorization": "Bearer tok-123", "Accept": "application/json"}
    replies = []
    # Each way twice: with an empty cookie jar, then with a cookie in it.
    for fast, cookie in ((False, False), (True, False), (False, True), (True, True)):
        session, adapter = _session(server)
        if cookie:
            session.cookies.set("lb", "node-7", domain="127.0.0.1", path="/")
        url = f"{server}/v2/report/activities"
        if fast:
            response = adapter.get(session, url, params, headers, 5)
        else:
            response = session.get(
                url, params=params, headers=headers, timeout=5, verify=True, allow_redirects=False
            )
        replies.append((response.status_code, response.json(), response.encoding))
        session.close()
    assert replies[0] == replies[1] == replies[2] == replies[3]
    slow, fast, slow_with_cookie, fast_with_cookie = _Recorder.seen
    assert fast == slow
    assert fast_with_cookie == slow_with_cookie
    assert fast_with_cookie[1]["Cookie"] == "lb=node-7"
    assert fast[1]["Authorization"] == "Bearer tok-123"
    if "next_page_token" in params:
        assert "next_page_token=aB%2Bc%2Fd%3De~f+g%26h%25i+%C3%A9" in fast[0]


def test_cookies_set_by_an_answer_are_sent_with_the_next_call(server: str) -> None:
    session, adapter = _session(server)
    headers = {"Accept": "application/json"}
    adapter.get(session, f"{server}/v2/a", {}, headers, 5)
    adapter.get(session, f"{server}/v2/b", {}, headers, 5)
    session.close()
    assert "Cookie" not in _Recorder.seen[0][1]
    assert _Recorder.seen[1][1]["Cookie"] == "lb=node-7"


def test_a_redirect_is_not_followed(server: str) -> None:
    session, adapter = _session(server)
    response = adapter.get(session, f"{server}/moved", {"a": 1}, {}, 5)
    session.close()
    assert response.status_code == 302
    assert response.headers["Location"] == "/elsewhere"
    assert [path for path, _ in _Recorder.seen] == ["/moved?a=1"]


def test_a_refused_connection_raises_what_session_get_raises() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    session, adapter = _session(base)
    with pytest.raises(requests.ConnectionError) as slow:
        session.get(f"{base}/v2/x", timeout=5, allow_redirects=False)
    with pytest.raises(requests.ConnectionError) as fast:
        adapter.get(session, f"{base}/v2/x", {}, {}, 5)
    session.close()
    assert type(fast.value) is type(slow.value)


def test_a_header_with_a_line_break_is_refused_as_session_get_refuses_it(server: str) -> None:
    session, adapter = _session(server)
    headers = {"Authorization": "Bearer tok\r\nX-Injected: 1"}
    with pytest.raises(requests.exceptions.InvalidHeader):
        session.get(f"{server}/v2/x", headers=headers, timeout=5, allow_redirects=False)
    with pytest.raises(requests.exceptions.InvalidHeader):
        adapter.get(session, f"{server}/v2/x", {}, headers, 5)
    session.close()
    assert _Recorder.seen == []


def test_a_compressed_body_is_decoded_as_session_get_decodes_it(server: str) -> None:
    session, adapter = _session(server)
    slow = session.get(f"{server}/gzip", timeout=5, allow_redirects=False)
    fast = adapter.get(session, f"{server}/gzip", {}, {}, 5)
    session.close()
    assert fast.content == slow.content
    assert fast.content.startswith(b'{"path": "/gzip"}') and len(fast.content) > 5000
    assert "gzip" in _Recorder.seen[1][1]["Accept-Encoding"]


def test_a_body_cut_off_raises_what_session_get_raises(server: str) -> None:
    session, adapter = _session(server)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(f"{server}/cut", timeout=5, allow_redirects=False)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        adapter.get(session, f"{server}/cut", {}, {}, 5)
    session.close()


# -- the limits: a whole deadline, a capped body ---------------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    """Bodies that test the limits: trickled, bombs, unusual encodings."""

    protocol_version = "HTTP/1.1"
    payload = json.dumps({"activity_logs": [{"time": "2025-01-01T00:00:00Z"}] * 50}).encode()

    def do_GET(self) -> None:
        self.close_connection = True
        body, encoding = self.payload, ""
        if self.path == "/trickle-head":
            self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            return
        if self.path == "/bomb":
            body, encoding = zlib_bomb(), "gzip"
        elif self.path == "/members":
            half = len(body) // 2
            body, encoding = gzip.compress(body[:half]) + gzip.compress(body[half:]), "gzip"
        elif self.path == "/raw-deflate":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body, encoding = packer.compress(body) + packer.flush(), "deflate"
        elif self.path == "/br":
            encoding = "br"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if not self.path.endswith("?keep-alive"):
            # Said as it is done (see _Recorder). http.client then hands the socket from
            # the connection to the response: the deadline must cut it off there too.
            self.send_header("Connection", "close")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if self.path.startswith("/trickle-body"):
            self._trickle(body)
            return
        with contextlib.suppress(OSError):  # the client hangs up at its cap
            self.wfile.write(body)

    def _trickle(self, data: bytes) -> None:
        """A byte a second, each well within the per-read timeout (at most 30 s)."""
        loopback.trickle(self, data, limit=30)

    def log_message(self, *args: object) -> None:
        pass


def zlib_bomb() -> bytes:
    """About 1 MB of gzip (64 members of 16 MiB of blanks each) that inflates to 1 GiB."""
    member = gzip.compress(b" " * (16 << 20), compresslevel=9)
    return member * 64


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with loopback.serve(_Hostile) as url:
        yield url


def _limited(base: str, **limits: Any) -> tuple[requests.Session, EnvironmentAdapter]:
    session = requests.Session()
    session.trust_env = False
    adapter = EnvironmentAdapter(
        (base,), pool_connections=2, pool_maxsize=2, limits=TransportLimits(**limits)
    )
    session.mount("http://", adapter)
    return session, adapter


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-body?keep-alive", "/trickle-head"])
def test_a_trickle_is_cut_off_at_the_whole_deadline(hostile: str, path: str) -> None:
    """Each byte comes well within the 10 s per-read timeout; the whole answer never
    does. The deadline covers the headers and the body alike."""
    session, adapter = _limited(hostile, deadline=1.5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"within 1.5 s \(request_deadline\)"):
        adapter.get(session, f"{hostile}{path}", {}, {}, 10)
    assert 1.4 < time.monotonic() - started < 3.0
    session.close()


def test_a_gzip_bomb_is_never_inflated_into_memory(hostile: str) -> None:
    bomb = zlib_bomb()  # made before the measure
    session, adapter = _limited(hostile, max_body_bytes=4 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            adapter.get(session, f"{hostile}/bomb", {}, {}, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        session.close()
    assert str(caught.value) == (
        "decompressed response body larger than 4,194,304 bytes (max_response_bytes)"
    )
    assert "\n" not in str(caught.value)
    assert peak < 4 * (4 << 20) + 2 * len(bomb), f"peak {peak:,} bytes"  # not 1 GiB


def test_a_body_on_the_wire_beyond_the_cap_is_refused(hostile: str) -> None:
    session, adapter = _limited(hostile, max_body_bytes=100)
    with pytest.raises(ResponseTooLarge, match=r"^response body larger than 100 bytes"):
        adapter.get(session, f"{hostile}/plain", {}, {}, 10)
    session.close()


@pytest.mark.parametrize("path", ["/members", "/raw-deflate", "/plain"])
def test_valid_encodings_decode_to_the_body(hostile: str, path: str) -> None:
    session, adapter = _limited(hostile)
    assert adapter.get(session, f"{hostile}{path}", {}, {}, 10).content == _Hostile.payload
    session.close()


def test_an_encoding_the_client_did_not_ask_for_is_refused(hostile: str) -> None:
    session, adapter = _limited(hostile)
    with pytest.raises(requests.exceptions.ContentDecodingError, match="'br' is not one"):
        adapter.get(session, f"{hostile}/br", {}, {}, 10)
    session.close()
