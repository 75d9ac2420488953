"""`EnvironmentAdapter.get` sends what `session.get` sends and returns what it returns:
the same request line, headers and cookies, the same response, the same exceptions."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
import requests

from support import loopback
from zoom_ingest.zoom.transport import EnvironmentAdapter


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
